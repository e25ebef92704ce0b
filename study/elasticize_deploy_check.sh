#!/usr/bin/env bash
# Deployment of trained elasticized keras-applications CNNs: each application is
# elasticized, trained briefly on Fashion-MNIST (so that its BatchNorms hold real
# statistics), then converted with `convert/to_lce.py --strict` and verified against Keras
# on real test images, and evaluated through the LCE interpreter. The evidence for
# "verification passing once their BatchNorms are trained" (tests/test_elasticize.py
# converts the random-weight nets without verification: see README.md, elasticize).
#
#   bash study/elasticize_deploy_check.sh            # all applications
#   COMMIT=1 bash study/elasticize_deploy_check.sh   # also commit each result
#
# Budget per application: 200 steps of 64 images, 32 px, Adam 1e-3, BatchNorm momentum
# 0.9. Resumable: a finished application is skipped. Logs: runs/elasticize_deploy/<app>/.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
RUNS=${RUNS:-runs/elasticize_deploy}
RESULTS=${RESULTS:-docs/results/elasticize/deploy}
APPS=${APPS:-ResNet50V2 MobileNet DenseNet121 EfficientNetB0}
source study/records.sh
mkdir -p "$RESULTS"

for app in $APPS; do
  out="$RUNS/$app"
  if [ ! -f "$out/eval.json" ]; then
    [ -f "$out/model.h5" ] ||
      $PY train/train.py --model "keras:$app" --elasticize --dataset fashion_mnist --seed 0 \
        --image_size 32 --batch_size 64 --epochs 4 --steps_per_epoch 50 --validation_steps 5 \
        --learning_rate 1e-3 --batch_norm_momentum 0.9 --verbose 2 --output_dir "$out"
    # --strict: every binarized conv an LceBconv2d; verification on 64 real test images.
    $PY convert/to_lce.py "$out/model.h5" --strict --dataset fashion_mnist --samples 64 \
      --json "$out/conversion.json" > "$out/conversion.txt" 2>&1 || true
    models=(--model "$out/model.h5")
    [ -f "$out/model.tflite" ] && models+=(--model "$out/model.tflite")
    $PY train/evaluate.py "${models[@]}" --dataset fashion_mnist --json "$out/eval.json"
  fi
  mkdir -p "$RESULTS/$app"
  for file in config.json metrics.json conversion.json conversion.txt eval.json; do
    [ -f "$out/$file" ] && cp "$out/$file" "$RESULTS/$app/"
  done
  commit_results "elasticize deploy check: $app"
done

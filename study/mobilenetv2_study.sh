#!/usr/bin/env bash
# Elastic-Link on MobileNetV2 (beyond the paper): tf.keras.applications MobileNetV2
# elasticized (el_mobilenetv2) vs the same binarization without links
# (binary_mobilenetv2) vs the float model (mobilenetv2), on Fashion-MNIST: the evidence of
# docs/results/mobilenetv2/README.md. Resumable: rerun it and finished runs are skipped.
#
#   bash study/mobilenetv2_study.sh            # all runs, seeds 0 1 2
#   COMMIT=1 bash study/mobilenetv2_study.sh   # also commit each finished run's small files
#
# One budget for all: 600 steps of 64 images (38,400 images), width (alpha) 0.35, 32 px
# (keras-applications' smallest input), Adam 1e-3, LR x0.1 at 50 % and 80 %, every
# BatchNorm's momentum 0.9 (keras-applications build MobileNetV2 with 0.999, which leaves
# the moving statistics untrained in a run this short: the float net then tests at
# chance). The seed-0 EL model is converted with --strict, verified and evaluated through
# the LCE interpreter. Logs: runs/mobilenetv2_v2/<run>/log.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
RUNS=${RUNS:-runs/mobilenetv2_v2}
RESULTS=${RESULTS:-docs/results/mobilenetv2/run_records}
SEEDS=${SEEDS:-0 1 2}
BUDGET=${BUDGET:-batch_size=64,epochs=8,steps_per_epoch=75,validation_steps=10,learning_rate=1e-3,width=0.35,image_size=32,batch_norm_momentum=0.9}
STUDY="mobilenetv2 study"
source study/records.sh

for seed in $SEEDS; do
  for recipe in el_mobilenetv2 binary_mobilenetv2 mobilenetv2; do
    check=none
    [ "$seed" = 0 ] && check=el_mobilenetv2
    $PY study/run_study.py --only "$recipe" --seeds "$seed" --runs_dir "$RUNS" \
      --lce_check "$check" --set "$BUDGET" || true
    save "$recipe seed $seed"
  done
done

#!/usr/bin/env bash
# Real-to-Binary vs EL-dagger (EL + Real-to-Binary) on Fashion-MNIST: the CPU-sized
# evidence of docs/results/r2b/README.md. Resumable: rerun it and finished runs are skipped.
#
#   bash study/r2b_study.sh            # all runs, seeds 0 1 2
#   COMMIT=1 bash study/r2b_study.sh   # also commit each finished run's small files
#
# One budget: every student sees 19,200 training images (300 steps of 64), width 0.25,
# Adam 1e-3, LR x0.1 at 50 % and 80 % of each (stage's) run. The multi-stage recipes
# (r2b_*, el_r2b_*) spend them as three stages of 100 steps (soft activations, binary
# activations, binary); EL-ResNet26 (plain recipe) in one run. Stage 1 of the
# multi-stage recipes, the float teacher (ResNet26 / ResNet18, 19,200 images, seed 0),
# is trained once per architecture and placed in each run's 1_teacher folder, which the
# recipe then skips as finished. Seed-0 EL-dagger students are converted with --strict,
# verified, and evaluated through the LCE interpreter. Logs: runs/r2b/<run>/log.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
RUNS=${RUNS:-runs/r2b}
RESULTS=${RESULTS:-docs/results/r2b/run_records}
SEEDS=${SEEDS:-0 1 2}
BUDGET=batch_size=64,steps_per_epoch=50,validation_steps=10,learning_rate=1e-3
STAGE=${STAGE:-$BUDGET,epochs=2}
WHOLE=${WHOLE:-$BUDGET,epochs=6}
STUDY="r2b study"
source study/records.sh

for arch in resnet26 resnet18; do
  $PY study/run_study.py --only "$arch" --seeds 0 --runs_dir "$RUNS" --set "$WHOLE"
  save "the teacher ($arch, seed 0)"
done

student() {  # recipe seed teacher-arch
  local out="$RUNS/$1_s$2"
  if [ -n "$3" ] && [ ! -d "$out/1_teacher" ]; then
    mkdir -p "$out"
    cp -r "$RUNS/$3_s0" "$out/1_teacher.tmp" && mv "$out/1_teacher.tmp" "$out/1_teacher"
  fi
  $PY study/run_study.py --only "$1" --seeds "$2" --runs_dir "$RUNS" \
    --lce_check el_r2b_resnet26,el_r2b_resnet18 --set "$4" || true
  save "$1 seed $2"
}

# The bottleneck question first (EL-dagger vs Real-to-Binary vs EL, every seed), then RN18.
for seed in $SEEDS; do
  student el_r2b_resnet26 "$seed" resnet26 "$STAGE"
  student r2b_resnet26 "$seed" resnet26 "$STAGE"
  student el_resnet26 "$seed" "" "$WHOLE"
done
for seed in $SEEDS; do
  student el_r2b_resnet18 "$seed" resnet18 "$STAGE"
  student r2b_resnet18 "$seed" resnet18 "$STAGE"
done

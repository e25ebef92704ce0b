#!/usr/bin/env bash
# ReActNet-A / ReActNet-C / EL-ReActNet with ReActNet's two-step distillation recipe on
# Fashion-MNIST, plus EL-ReActNet without distillation: the CPU-sized evidence of
# docs/results/reactnet/README.md. Resumable: rerun it and finished runs are skipped.
#
#   bash study/reactnet_study.sh            # all runs (teacher first), seeds 0 1 2
#   COMMIT=1 bash study/reactnet_study.sh   # also commit each finished run's small files
#
# One budget for every student: each step (stage) 200 steps of 64 images (12,800 images,
# 0.21 of an epoch), width 0.25, Adam 5e-4 with linear decay to 0 (the recipes'); the
# teacher, a float ResNet18 at width 0.25, gets the two steps' total (25,600 images,
# Adam 1e-3, step decay). Logs: runs/reactnet/<run>/log.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
RUNS=${RUNS:-runs/reactnet}
RESULTS=docs/results/reactnet/run_records
SEEDS=${SEEDS:-0 1 2}
STUDENT=batch_size=64,epochs=4,steps_per_epoch=50,validation_steps=10,learning_rate=5e-4
TEACHER_BUDGET=batch_size=64,epochs=8,steps_per_epoch=50,validation_steps=10,learning_rate=1e-3
TEACHER=$RUNS/resnet18_s0/model.h5

STUDY="reactnet study"
source study/records.sh

$PY study/run_study.py --only resnet18 --seeds 0 --runs_dir "$RUNS" --set "$TEACHER_BUDGET"
save "the teacher (resnet18, seed 0)"
# The EL question first (EL-ReActNet vs ReActNet-C, every seed), then ReActNet-A and the
# control without distillation.
for pair in el_reactnet,reactnet_c reactnet_a,el_reactnet_no_distillation; do
  for seed in $SEEDS; do
    for recipe in ${pair/,/ }; do
      $PY study/run_study.py --only "$recipe" --seeds "$seed" --runs_dir "$RUNS" \
        --teacher "$TEACHER" --set "$STUDENT" || true
      save "$recipe seed $seed"
    done
  done
done

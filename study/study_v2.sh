#!/usr/bin/env bash
# Reproduction study v2: every configuration of the paper's Tables 1-4, the MobileNet
# trio and both downsampling readings, one budget, 3 seeds, two runs at a time (each
# pinned to one core). Resumable: rerun it and finished runs are skipped (also those only
# recorded in $RESULTS); a killed run resumes from its last backup. Every finished run's
# small files are copied to $RESULTS/<run>/ (committed with COMMIT=1) within a minute;
# at the end docs/results/study_v2/ is regenerated from the records (study/report_v2.py).
#
#   bash study/study_v2.sh
#   COMMIT=1 bash study/study_v2.sh
#   ONLY=resnet26,el_resnet26 SEEDS=0 bash study/study_v2.sh   # a subset
#
# Logs: runs/study_v2/<recipe>_s<seed>/log.txt; progress: runs/study_v2.log.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
RUNS=${RUNS:-runs/study_v2}
RESULTS=${RESULTS:-docs/results/study_v2/run_records}
SEEDS=${SEEDS:-0,1,2}
JOBS=${JOBS:-2}
# The budget is the open decision of this study (see docs/results/study_v2/README.md):
# it must bring the float ResNet26 to >= 90 % test top-1.
BUDGET=${BUDGET:-width=0.25,batch_size=128,epochs=20,steps_per_epoch=60,validation_steps=20,learning_rate=1e-3,lr_decay_epochs=0.5,0.8,lr_decay_factor=0.1}
# Priority order: the float recipe check and Table 2's baseline vs EL6 first, then Table 1,
# the other downsampling reading (it decides the EL recipes' default), Table 2, Table 4,
# Table 3's basic trio, the MobileNet trio.
CONFIGS=${ONLY:-resnet26,sresnet26_ks,el_resnet26,sresnet26,sresnet26_ke,sresnet26_ks_ke,sresnet26_ks_ki,sresnet26_ks_ki_ke,sresnet26_ks_stride_reduce,el_resnet26_stride_reduce,el1,el2,el3,el4,el5,sresnet26_reduce_fp,sresnet26_reduce_el_minus,resnet18,bireal_resnet18,el_resnet18,mobilenet,binary_mobilenet,el_mobilenet}
STUDY="study v2"
source study/records.sh
restore  # finished runs recorded in $RESULTS are not trained again

(while sleep 60; do save "finished runs"; done) &
watcher=$!
trap 'kill $watcher 2>/dev/null || true' EXIT
status=0
# A run takes 25-50 min; the timeout is wall time, which includes the minutes the study is
# paused (kill -STOP) for benchmarks and CI, so it only catches a run that hangs.
$PY study/run_study.py --only "$CONFIGS" --seeds "$SEEDS" --jobs "$JOBS" --runs_dir "$RUNS" \
  --lce_check el_resnet26 --set "$BUDGET" --timeout "${TIMEOUT:-14400}" || status=$?
kill $watcher 2>/dev/null || true
save "finished runs"
# The study page follows the records (committed with COMMIT=1, like the records).
$PY study/report_v2.py && RESULTS=docs/results/study_v2 commit_results "$STUDY: report regenerated"
exit $status

# Shared by the study scripts (sourced): copy the small files of every finished run in
# $RUNS to $RESULTS/<run>/ and, with COMMIT=1, commit them (message: "$STUDY: results of $1").
save() {
  local run name stage file
  for run in "$RUNS"/*/; do
    name=$(basename "$run")
    # study.json is written last: a run being finished right now waits for the next save
    [ -f "$run/final_eval.json" ] && [ -f "$run/study.json" ] || continue
    mkdir -p "$RESULTS/$name"
    cp "$run"/study.json "$run"/final_eval.json "$RESULTS/$name/"
    for file in metrics.json config.json stages.json final_eval_lce.json gamma_report.json; do
      [ -f "$run/$file" ] && cp "$run/$file" "$RESULTS/$name/"
    done
    for stage in "$run"/[0-9]_*/; do
      [ -d "$stage" ] || continue
      for file in metrics.json config.json gamma_report.json; do
        [ -f "$stage/$file" ] && cp "$stage/$file" "$RESULTS/$name/$(basename "$stage")_$file"
      done
    done
  done
  commit_results "$STUDY: results of $1"
}

# The reverse of `save` for finished runs whose run folder is gone (runs/ is not kept
# between machines): put their recorded files back in $RUNS/<run>/, so that the study
# skips them instead of training them again.
restore() {
  local record name
  for record in "$RESULTS"/*/; do
    name=$(basename "$record")
    [ -f "$record/final_eval.json" ] && [ ! -f "$RUNS/$name/final_eval.json" ] || continue
    mkdir -p "$RUNS/$name"
    cp "$record"/*.json "$RUNS/$name/"
  done
}

# With COMMIT=1, commit what changed under $RESULTS (only there) with message $1.
commit_results() {
  if [ "${COMMIT:-0}" = 1 ] && [ -n "$(git status --porcelain -- "$RESULTS")" ]; then
    for _ in 1 2 3 4 5; do  # other commits may hold the index lock for a moment
      git add -- "$RESULTS" && git commit -q -m "$1" -- "$RESULTS" && break
      sleep 5
    done
  fi
}

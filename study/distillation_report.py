"""Results page of a multi-stage (distillation) study from its committed run records.

    python study/distillation_report.py --records docs/results/reactnet/run_records \\
        --out_dir docs/results/reactnet --compare el_reactnet:reactnet_c,...

Reads each run's `study.json`, `final_eval.json` and per-stage `<n>_<stage>_metrics.json`
(what `study/reactnet_study.sh` commits) and writes `runs.csv` (one row per run),
`results.md` (mean +- sample standard deviation of the test top-1 per recipe, every run,
and each `--compare A:B` as the mean paired difference A - B over the seeds both have,
with a t-based 95 % confidence interval; "A > B" or "A < B" only when the interval
excludes 0) and `curves.png` (validation top-1 per epoch, stages one after another,
one line per run). Every number is read from the records.
"""

import json
import os
import sys

from absl import app, flags
from study_records import (
    collect,
    format_interval,
    lce_table,
    new_figure,
    paired_difference,
    results_table,
    top1_by_recipe,
    verdict,
    write_runs_csv,
)

import el_larq  # noqa: F401  (Keras 2 before TensorFlow)
from el_larq.io import write_atomic

FLAGS = flags.FLAGS
flags.DEFINE_string("records", None, "Folder of run records (<recipe>_s<seed>/).")
flags.DEFINE_string("out_dir", None, "Where runs.csv, results.md and curves.png go.")
flags.DEFINE_list("compare", [], "Paired comparisons A:B (recipe names).")
flags.mark_flags_as_required(["records", "out_dir"])


def comparisons(runs: list[dict], pairs: list[str]) -> str:
    top1 = top1_by_recipe(runs)
    lines = [
        "| comparison | seeds | mean difference (points) | 95 % CI | verdict |",
        "| --- | --- | --- | --- | --- |",
    ]
    for pair in pairs:
        a, b = pair.split(":")
        mean, half, n = paired_difference(top1.get(a, {}), top1.get(b, {}))
        if n == 0:
            lines.append(f"| {a} − {b} | 0 | – | – | no common seeds yet |")
            continue
        ci = format_interval(mean, half)
        lines.append(f"| {a} − {b} | {n} | {mean:+.2f} | {ci} | {verdict(mean, half, a, b)} |")
    return "\n".join(lines)


def plot_curves(runs: list[dict], path: str) -> bool:
    """Validation top-1 per epoch, stages in sequence, a line per run; False without matplotlib."""
    try:
        figure = new_figure((8, 4.5))
    except ImportError:
        return False
    axes = figure.add_subplot()
    colours = {}
    for run in runs:
        values = [row["val_top1"] for rows in run["stages"].values() for row in rows]
        colour = colours.setdefault(run["recipe"], f"C{len(colours)}")
        label = (
            run["recipe"]
            if run["seed"] == min(r["seed"] for r in runs if r["recipe"] == run["recipe"])
            else None
        )
        axes.plot(range(1, len(values) + 1), [100 * v for v in values], color=colour, label=label)
    axes.set_xlabel("epoch (stages in sequence)")
    axes.set_ylabel("validation top-1 (%)")
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return True


def main(argv):
    del argv
    runs = collect(FLAGS.records)
    if not runs:
        sys.exit(f"distillation_report.py: error: no finished run records in {FLAGS.records}")
    os.makedirs(FLAGS.out_dir, exist_ok=True)
    write_runs_csv(runs, os.path.join(FLAGS.out_dir, "runs.csv"))
    budgets: dict[str, list[str]] = {}
    for run in runs:
        recipes = budgets.setdefault(json.dumps(run["budget"], sort_keys=True), [])
        if run["recipe"] not in recipes:
            recipes.append(run["recipe"])
    page = [
        "<!-- written by study/distillation_report.py from run_records/; do not edit -->",
        "## Test top-1 on Fashion-MNIST (10,000 test images, Keras)",
        "",
        results_table(runs),
        "",
        "## Paired comparisons (same seed; t-based 95 % confidence interval)",
        "",
        comparisons(runs, FLAGS.compare),
        "",
    ]
    if lce_table(runs):
        page += [
            "## Deployed: converted with `convert/to_lce.py --strict` (verified), LCE interpreter",
            "",
            lce_table(runs),
            "",
        ]
    page += [
        "Budgets (train.py flags, each applied to every stage of a run):",
        "",
        *[f"* {', '.join(names)}: `{budget}`" for budget, names in budgets.items()],
        "",
    ]
    write_atomic(os.path.join(FLAGS.out_dir, "results.md"), "\n".join(page).encode())
    if not plot_curves(runs, os.path.join(FLAGS.out_dir, "curves.png")):
        print("curves.png skipped: matplotlib is not installed (pip install el-larq[plot])")
    print(f"{len(runs)} runs -> {FLAGS.out_dir}/results.md, runs.csv, curves.png")


if __name__ == "__main__":
    app.run(main)

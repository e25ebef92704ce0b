"""Results of study v2 from its committed run records: tables, verdicts, figures.

    python study/report_v2.py [--records docs/results/study_v2/run_records] \\
        [--out_dir docs/results/study_v2]

Every number is read from the run records that `study/study_v2.sh` commits, so this one
command regenerates all of them. It writes to `--out_dir`:

- `results.md`: the paper's headline claims, each answered by one contrast with its 95 %
  interval (the same table goes between the claims markers of the `--summary` page); test
  top-1 per configuration (mean ± sample sd, every seed) beside the paper's ImageNet
  top-1; every ordering the paper's tables imply (every pair of rows of one table, Table 3
  per architecture) as the mean paired difference over seeds with a t-based 95 %
  confidence interval, "reproduced" / "reversed" only when the interval excludes 0, and
  for an undecided one how many seeds would decide it if its mean and spread held (a
  projection); the two downsampling readings; the gammas of Fig. 4; LCE vs Keras.
- `runs.csv`: one row per run.
- `summary.png`: final test top-1 of every configuration, every seed a dot.
- `curves.png`: validation top-1 per epoch, one panel per table.
- `gamma.png`: each gamma's change from its initial value (the paper's Fig. 4), per seed.

Runs of one seed share the data order, so differences are paired by seed. The intervals
are per ordering, not corrected for the number of orderings tested. What the paper claims
and how each claim is tested lives in `study/verdicts_v2.py`; this script reads the
records, draws the figures and writes the files.
"""

import os
import statistics
import sys

from absl import app, flags
from study_records import (
    collect,
    lce_table,
    new_figure,
    results_table,
    top1_by_recipe,
    write_runs_csv,
)
from verdicts_v2 import (
    CLAIMS_BEGIN,
    CLAIMS_END,
    GROUPS,
    READINGS,
    claims,
    downsamples,
    gamma_changes,
    gamma_runs,
    orderings,
    paper_column,
    readings,
    splice_claims,
)

import el_larq  # noqa: F401  (Keras 2 before TensorFlow)
from el_larq.io import write_atomic
from el_larq.plots import MATPLOTLIB_MISSING, save_png

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGS = flags.FLAGS
flags.DEFINE_string(
    "records", os.path.join(ROOT, "docs", "results", "study_v2", "run_records"), "Run records."
)
flags.DEFINE_string("out_dir", os.path.join(ROOT, "docs", "results", "study_v2"), "Output folder.")
flags.DEFINE_string(
    "summary",
    None,
    "Markdown page whose claims section (between CLAIMS_BEGIN and CLAIMS_END) is rewritten "
    "with the claims table. Default: README.md beside --out_dir if it has both markers.",
)


def _study_order(runs: list[dict]) -> list[str]:
    """Recipes in table order (each once), then any others in record order."""
    order = [recipe for _, _, recipes in GROUPS for recipe in recipes]
    order += [recipe for _, weights in READINGS for recipe in weights]
    order += [run["recipe"] for run in runs]
    present = {run["recipe"] for run in runs}
    return [recipe for recipe in dict.fromkeys(order) if recipe in present]


def plot_summary(runs: list[dict], path: str) -> None:
    """Final test top-1 per configuration: every seed a dot, the mean a bar."""
    top1 = top1_by_recipe(runs)
    recipes = _study_order(runs)
    figure = new_figure((8.0, 0.32 * len(recipes) + 1.4))
    axes = figure.add_subplot()
    for row, recipe in enumerate(recipes):
        values = list(top1[recipe].values())
        axes.barh(row, statistics.mean(values), color="0.85", height=0.7)
        axes.plot(values, [row] * len(values), "o", color="C0", markersize=4)
    axes.set_yticks(range(len(recipes)), recipes, fontsize=8)
    axes.invert_yaxis()
    low = min(min(seeds.values()) for seeds in top1.values())
    high = max(max(seeds.values()) for seeds in top1.values())
    axes.set_xlim(max(0.0, low - 3), min(100.0, high + 3))
    axes.set_xlabel("Fashion-MNIST test top-1 % (bar: mean; dots: seeds)")
    axes.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    save_png(figure, path)


def plot_curves(runs: list[dict], path: str) -> None:
    """Validation top-1 per epoch: a panel per table, a colour per recipe, a line per seed."""
    figure = new_figure((14.0, 8.0))
    for index, (title, _, recipes) in enumerate(GROUPS):
        axes = figure.add_subplot(2, 3, index + 1)
        for colour, recipe in enumerate(recipes):
            for run in (run for run in runs if run["recipe"] == recipe):
                values = [row["val_top1"] for rows in run["stages"].values() for row in rows]
                label = recipe if run["seed"] == min(top1_by_recipe(runs)[recipe]) else None
                axes.plot(
                    range(1, len(values) + 1),
                    [100 * v for v in values],
                    color=f"C{colour}",
                    linewidth=0.9,
                    label=label,
                )
        axes.set_title(title, fontsize=9)
        axes.set_xlabel("epoch", fontsize=8)
        axes.set_ylabel("validation top-1 %", fontsize=8)
        axes.grid(alpha=0.3)
        if axes.lines:
            axes.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    save_png(figure, path)


def plot_gammas(runs: list[dict], path: str) -> bool:
    """Fig. 4: each gamma's change, a panel per recipe with trainable gammas, seeds as dots."""
    by_recipe = gamma_runs(runs)
    if not by_recipe:
        return False
    figure = new_figure((10.0, 3.6 * len(by_recipe)))
    for index, (recipe, group) in enumerate(by_recipe.items()):
        axes = figure.add_subplot(len(by_recipe), 1, index + 1)
        layout = group[0]["gamma"]
        for column, gamma in enumerate(layout):
            changes = [
                row["change"]
                for run in group
                for row in run["gamma"]
                if row["layer"] == gamma["layer"]
            ]
            colour = "tab:red" if gamma["kind"] != "expand" else "tab:blue"
            axes.bar(
                column,
                statistics.mean(changes),
                color=colour,
                alpha=0.5,
                hatch="//" if downsamples(gamma["layer"]) else None,
            )
            axes.plot([column] * len(changes), changes, "k.", markersize=4)
        axes.axhline(0.0, color="k", linewidth=0.8)
        labels = [f"{g['layer'].removesuffix('_el')}\ng={g['initial']:g}" for g in layout]
        axes.set_xticks(range(len(layout)), labels, rotation=90, fontsize=6)
        axes.set_ylabel("gamma − initial g")
        axes.set_title(
            f"{recipe}: red reduce links, blue expand links, hatched: downsampling block; "
            f"bar = mean of {len(group)} seeds, dots = seeds",
            fontsize=8,
        )
    figure.tight_layout()
    save_png(figure, path)
    return True


def budgets(runs: list[dict]) -> str:
    used: dict[str, list[str]] = {}
    for run in runs:
        text = ", ".join(f"{key}={value}" for key, value in run["budget"].items())
        if run["recipe"] not in used.setdefault(text, []):
            used[text].append(run["recipe"])
    return "\n".join(f"* `{budget}`: {', '.join(names)}" for budget, names in used.items())


def _summary_page() -> tuple[str | None, str]:
    """The summary page to update and its text, checked before anything is written: an
    explicit `--summary` must have the claims markers; the default (README.md beside
    `--out_dir`) is used only when it has them."""
    path = FLAGS.summary or os.path.join(
        os.path.dirname(os.path.abspath(FLAGS.out_dir)), "README.md"
    )
    try:
        with open(path, encoding="utf-8") as f:
            page = f.read()
    except OSError as error:
        if FLAGS.summary:
            sys.exit(f"report_v2.py: error: cannot read --summary {path}: {error.strerror}")
        return None, ""
    if splice_claims(page, "") is None:
        if FLAGS.summary:
            sys.exit(
                f"report_v2.py: error: --summary {path} lacks the lines {CLAIMS_BEGIN!r} and "
                f"{CLAIMS_END!r} that mark its claims section"
            )
        return None, ""
    return path, page


def main(argv):
    del argv
    try:
        import matplotlib  # noqa: F401  (checked before anything is written)
    except ImportError:
        sys.exit(f"report_v2.py: error: {MATPLOTLIB_MISSING.format(what='the report')}")
    runs = collect(FLAGS.records)
    if not runs:
        sys.exit(f"report_v2.py: error: no finished run records in {FLAGS.records}")
    summary, summary_page = _summary_page()
    claims_table = claims(runs)
    os.makedirs(FLAGS.out_dir, exist_ok=True)
    ordering_text, counts, projected = orderings(runs)
    decided = ", ".join(f"{count} {name}" for name, count in counts.items())
    within = " and ".join(f"{count} within {seeds} seeds" for seeds, count in projected.items())
    page = [
        "<!-- written by study/report_v2.py from run_records/; do not edit -->",
        f"{len(runs)} finished runs of {len(top1_by_recipe(runs))} configurations.",
        "",
        "## The paper's claims at this scale (paired by seed; t-based 95 % CI)",
        "",
        claims_table,
        "",
        "## Test top-1 on Fashion-MNIST (10,000 test images, Keras)",
        "",
        results_table(runs, paper=paper_column),
        "",
        "![final test top-1 per configuration, every seed](summary.png)",
        "",
        "## The paper's orderings (paired by seed; t-based 95 % confidence interval)",
        "",
        f"Strict orderings: {decided}. An ordering is reproduced or reversed only when its "
        "interval excludes 0; the intervals are per ordering (not corrected for the number "
        "tested). Validation curves: [curves.png](curves.png).",
        "",
        "*Seeds to decide* is a projection, not a result: how many seeds of each recipe "
        "would make an undecided ordering's interval exclude 0 if its mean difference and "
        "the spread of its differences stayed as measured (from 2-3 seeds the spread is itself "
        f"uncertain by a factor of two or more). Of the {counts['undecided']} undecided "
        f"orderings, {within} would be decided.",
        "",
        ordering_text,
        "## Where a bottleneck downsamples (paired by seed; t-based 95 % CI)",
        "",
        readings(runs),
        "",
        "## Gammas after training (Fig. 4)",
        "",
        "Per seed, the mean change of the gammas of one kind; the interval is over seeds.",
        "",
        gamma_changes(runs),
        "",
        "![each gamma's change from its initial value](gamma.png)",
        "",
    ]
    if lce_table(runs):
        page += [
            "## Deployed: LCE flatbuffer vs Keras (verified conversion)",
            "",
            lce_table(runs),
            "",
        ]
    page += ["## Budgets (train.py flags)", "", budgets(runs), ""]
    write_atomic(os.path.join(FLAGS.out_dir, "results.md"), "\n".join(page).encode())
    write_runs_csv(runs, os.path.join(FLAGS.out_dir, "runs.csv"))
    plot_summary(runs, os.path.join(FLAGS.out_dir, "summary.png"))
    plot_curves(runs, os.path.join(FLAGS.out_dir, "curves.png"))
    if not plot_gammas(runs, os.path.join(FLAGS.out_dir, "gamma.png")):
        print("gamma.png skipped: no run with trainable gammas yet")
    if summary:
        write_atomic(summary, splice_claims(summary_page, claims_table).encode())
        print(f"claims -> {summary}")
    print(f"{len(runs)} runs -> {FLAGS.out_dir}/results.md, runs.csv, summary.png, curves.png")


if __name__ == "__main__":
    app.run(main)

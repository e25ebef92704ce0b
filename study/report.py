"""Collect the study's runs into docs/results/: per-run metrics, the table, the plots.

    python study/report.py [--runs_dir runs/study] [--out_dir docs/results]

Writes `runs.csv` (one row per finished run), `curves.json` (per-epoch metrics of
every run), `table.md` (mean +- spread per configuration beside the paper's
ImageNet top-1, each of the paper's orderings checked against the seeds, and the
LCE-vs-Keras test top-1 of the converted runs), `mobilenet_curves.png`,
`baseline_vs_el6_curves.png` and `gamma_el_resnet26.png`. Every number is read from
the runs' own files.
"""

import csv
import importlib.util
import io
import json
import os
import statistics
import sys

from absl import app, flags

import el_larq  # noqa: F401  (Keras 2 before TensorFlow)
from el_larq.io import write_atomic
from el_larq.recipes import load_recipe
from el_larq.summary import MATPLOTLIB_MISSING, plot_gamma_report

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGS = flags.FLAGS
flags.DEFINE_string("runs_dir", os.path.join(ROOT, "runs", "study"), "Study runs.")
flags.DEFINE_string("out_dir", os.path.join(ROOT, "docs", "results"), "Output folder.")


def _load(path: str):
    with open(path) as f:
        return json.load(f)


def collect(runs_dir: str) -> list[dict]:
    runs = []
    for name in sorted(os.listdir(runs_dir)):
        run = os.path.join(runs_dir, name)
        if not os.path.exists(os.path.join(run, "final_eval.json")):
            continue
        meta = _load(os.path.join(run, "study.json"))
        final = _load(os.path.join(run, "final_eval.json"))
        result = final[0]  # train/evaluate.py --json: one entry per model
        runs.append(
            {
                "recipe": meta["recipe"],
                "seed": meta["seed"],
                "test_top1": result["top1"],
                "test_top5": result["top5"],
                "examples": result.get("examples"),
                "wall_seconds": meta["wall_seconds"],
                "curve": _load(os.path.join(run, "metrics.json")),
                "gamma": _load(os.path.join(run, "gamma_report.json"))
                if os.path.exists(os.path.join(run, "gamma_report.json"))
                else [],
                "dir": run,
            }
        )
    return runs


def _paper(recipe: str) -> str:
    rows = load_recipe(recipe)["paper"]
    return "; ".join(
        f"T{r['table']} {r['row']}: "
        + ("n/c" if r["imagenet_top1"] is None else f"{r['imagenet_top1']:.1f}")
        for r in rows
    )


def table(runs: list[dict]) -> str:
    by_recipe: dict[str, list[dict]] = {}
    for run in runs:
        by_recipe.setdefault(run["recipe"], []).append(run)
    lines = [
        "| configuration (recipe) | Fashion-MNIST test top-1 % (mean ± spread) "
        "| runs (seed: top-1) | paper ImageNet top-1 % |",
        "| --- | --- | --- | --- |",
    ]
    for recipe, group in by_recipe.items():
        accs = [100 * run["test_top1"] for run in group]
        spread = (max(accs) - min(accs)) / 2 if len(accs) > 1 else float("nan")
        each = ", ".join(f"{run['seed']}: {100 * run['test_top1']:.2f}" for run in group)
        mean = f"{statistics.mean(accs):.2f} ± {spread:.2f}"
        lines.append(f"| `{recipe}` | {mean} | {each} | {_paper(recipe)} |")
    return "\n".join(lines) + "\n"


# The paper's orderings (ImageNet top-1, higher first) that the study tests.
ORDERINGS = [
    ("el_resnet26", "sresnet26_ks", "Table 2: EL6 64.0 > baseline S-ResNet26 (K_s) 59.8"),
    ("el1", "sresnet26_ks", "Table 2: EL1 61.8 > baseline 59.8 (EL on the reduce conv)"),
    ("el2", "el1", "Table 2: EL2 62.1 > EL1 61.8 (EL on the expand conv too)"),
    ("el3", "el2", "Table 2: EL3 63.2 > EL2 62.1 (EL's max-pooled 3x3 link)"),
    ("el3", "el4", "Table 2: EL3 63.2 > EL4 59.2 (the block residual is needed)"),
    ("el_resnet26", "el3", "Table 2: EL6 64.0 > EL3 63.2 (learnable gamma)"),
    ("el_resnet26", "el5", "Table 2: EL6 64.0 > EL5 63.6 (K on the reduce conv)"),
    ("sresnet26_reduce_fp", "el1", "Table 4: FP 1x1 62.0 > EL 61.8"),
    ("el1", "sresnet26_reduce_el_minus", "Table 4: EL 61.8 > EL-minus 60.6"),
    ("sresnet26_reduce_el_minus", "sresnet26_ks", "Table 4: EL-minus 60.6 > binary 1x1 59.4"),
    ("resnet26", "el_resnet26", "Table 3: FP ResNet26 72.5 > EL 64.0"),
    ("resnet18", "el_resnet18", "Table 3: FP ResNet18 69.3 > EL 60.1"),
    ("el_resnet18", "bireal_resnet18", "Table 3: EL ResNet18 60.1 > Bi-Real 56.4"),
    ("mobilenet", "el_mobilenet", "Table 3: FP MobileNet 70.6 > EL 56.4"),
    ("el_mobilenet", "binary_mobilenet", "Table 3: EL MobileNet 56.4 > binary (no convergence)"),
]


def orderings(runs: list[dict]) -> str:
    """Each paper ordering against the study's per-seed test top-1."""
    accs: dict[str, list[float]] = {}
    for run in runs:
        accs.setdefault(run["recipe"], []).append(100 * run["test_top1"])
    lines = [
        "| paper (ImageNet) | Fashion-MNIST: higher − lower (mean, points) | verdict |",
        "| --- | --- | --- |",
    ]
    for high, low, claim in ORDERINGS:
        if len(accs.get(high, [])) < 2 or len(accs.get(low, [])) < 2:
            lines.append(f"| {claim} | – | not run (needs 2 seeds of each) |")
            continue
        diff = statistics.mean(accs[high]) - statistics.mean(accs[low])
        if min(accs[high]) > max(accs[low]):
            verdict = "**reproduced** (every seed of the first above every seed of the second)"
        elif max(accs[high]) < min(accs[low]):
            verdict = "**reversed** (every seed of the first below every seed of the second)"
        elif diff > 0:
            verdict = "same direction, seeds overlap (not resolved)"
        else:
            verdict = "opposite direction, seeds overlap (not resolved)"
        lines.append(f"| {claim} | {diff:+.2f} | {verdict} |")
    return "\n".join(lines) + "\n"


def lce_check(runs: list[dict]) -> str:
    """Keras vs LCE-interpreter test top-1 of every run converted by the study."""
    lines = [
        "| run | Keras test top-1 % | LCE test top-1 % "
        "| difference in correctly classified test images |",
        "| --- | --- | --- | --- |",
    ]
    for run in runs:
        path = os.path.join(run["dir"], "final_eval_lce.json")
        if not os.path.exists(path):
            continue
        lce = _load(path)[0]
        apart = round(abs(lce["top1"] - run["test_top1"]) * lce["examples"])
        lines.append(
            f"| `{run['recipe']}` seed {run['seed']} | {100 * run['test_top1']:.2f} "
            f"| {100 * lce['top1']:.2f} | {apart} of {lce['examples']} |"
        )
    return "\n".join(lines) + "\n"


def gamma_trend(runs: list[dict]) -> str:
    """How the learned gammas of every EL-ResNet26 run moved, by link kind (Fig. 4's question)."""
    lines = [
        "| run | link kind | gammas | rose | fell | mean change (final − initial) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for run in runs:
        if run["recipe"] != "el_resnet26" or not run["gamma"]:
            continue
        for kind in ("squeeze", "expand"):
            changes = [g["value"] - g["initial"] for g in run["gamma"] if g["kind"] == kind]
            lines.append(
                f"| seed {run['seed']} | {kind} ({'reduce' if kind == 'squeeze' else 'expand'} "
                f"conv) | {len(changes)} | {sum(c > 0 for c in changes)} "
                f"| {sum(c < 0 for c in changes)} | {statistics.mean(changes):+.4f} |"
            )
    return "\n".join(lines) + "\n"


def plot_curves(runs: list[dict], recipes: list[str], path: str, title: str) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chosen = [run for run in runs if run["recipe"] in recipes]
    if not chosen:
        return False
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(11, 4))
    colors = dict(zip(recipes, ["tab:red", "tab:blue", "tab:green", "tab:purple"], strict=False))
    for run in chosen:
        epochs = [row["epoch"] for row in run["curve"]]
        style = dict(
            color=colors[run["recipe"]], alpha=0.8, linestyle="-" if run["seed"] == 0 else "--"
        )
        label = f"{run['recipe']} seed {run['seed']}"
        loss_ax.plot(epochs, [row["loss"] for row in run["curve"]], label=label, **style)
        acc_ax.plot(epochs, [100 * row["val_top1"] for row in run["curve"]], label=label, **style)
    loss_ax.set(xlabel="mini-epoch (25 steps of 128 images)", ylabel="training loss", title=title)
    acc_ax.set(xlabel="mini-epoch", ylabel="validation top-1 % (1,280 test images)")
    loss_ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _write(path: str, text: str) -> None:
    write_atomic(path, text.encode())  # a report is complete or not there


def main(argv):
    del argv
    if importlib.util.find_spec("matplotlib") is None:  # before any file is written
        sys.exit(f"report.py: error: {MATPLOTLIB_MISSING.format(what='the report')}")
    if not os.path.isdir(FLAGS.runs_dir):
        raise app.UsageError(
            f"no study runs in {FLAGS.runs_dir}: run `python study/run_study.py` first."
        )
    runs = collect(FLAGS.runs_dir)
    os.makedirs(FLAGS.out_dir, exist_ok=True)
    rows = io.StringIO(newline="")
    fields = ["recipe", "seed", "test_top1", "test_top5", "examples", "wall_seconds"]
    writer = csv.DictWriter(rows, fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(runs)
    _write(os.path.join(FLAGS.out_dir, "runs.csv"), rows.getvalue())
    curves = {f"{r['recipe']}_s{r['seed']}": r["curve"] for r in runs}
    _write(os.path.join(FLAGS.out_dir, "curves.json"), json.dumps(curves, indent=0))
    report = (
        table(runs)
        + "\n## The paper's orderings\n\n"
        + orderings(runs)
        + "\n## LCE flatbuffer vs Keras on the test set\n\n"
        + lce_check(runs)
        + "\n## EL-ResNet26 gammas after training\n\n"
        + gamma_trend(runs)
    )
    _write(os.path.join(FLAGS.out_dir, "table.md"), report)
    plot_curves(
        runs,
        ["binary_mobilenet", "el_mobilenet", "mobilenet"],
        os.path.join(FLAGS.out_dir, "mobilenet_curves.png"),
        "MobileNet on Fashion-MNIST",
    )
    plot_curves(
        runs,
        ["sresnet26_ks", "el_resnet26"],
        os.path.join(FLAGS.out_dir, "baseline_vs_el6_curves.png"),
        "S-ResNet26 (K_s) vs EL-ResNet26 (EL6)",
    )
    for run in runs:
        if run["recipe"] == "el_resnet26" and run["seed"] == 0 and run["gamma"]:
            plot_gamma_report(
                run["gamma"],
                os.path.join(FLAGS.out_dir, "gamma_el_resnet26.png"),
                "EL-ResNet26 gamma after the Fashion-MNIST study run (seed 0)",
            )
            _write(
                os.path.join(FLAGS.out_dir, "gamma_el_resnet26.json"),
                json.dumps(run["gamma"], indent=1),
            )
    print(report)
    print(f"{len(runs)} finished runs -> {FLAGS.out_dir}")


if __name__ == "__main__":
    app.run(main)

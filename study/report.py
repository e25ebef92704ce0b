"""Collect the study's runs into docs/results/: per-run metrics, the table, the plots.

    python study/report.py [--runs_dir runs/study] [--out_dir docs/results]

Writes `runs.csv` (one row per finished run), `curves.json` (per-epoch metrics of
every run), `table.md` (mean +- spread per configuration beside the paper's
ImageNet top-1), `mobilenet_curves.png`, `baseline_vs_el6_curves.png` and
`gamma_el_resnet26.png`. Every number is read from the runs' own files.
"""

import csv
import json
import os
import statistics

from absl import app, flags

import el_larq  # noqa: F401  (Keras 2 before TensorFlow)
from el_larq.recipes import load_recipe
from el_larq.summary import plot_gamma_report

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


def main(argv):
    del argv
    runs = collect(FLAGS.runs_dir)
    os.makedirs(FLAGS.out_dir, exist_ok=True)
    with open(os.path.join(FLAGS.out_dir, "runs.csv"), "w", newline="") as f:
        fields = ["recipe", "seed", "test_top1", "test_top5", "examples", "wall_seconds"]
        writer = csv.DictWriter(f, fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(runs)
    with open(os.path.join(FLAGS.out_dir, "curves.json"), "w") as f:
        json.dump({f"{r['recipe']}_s{r['seed']}": r["curve"] for r in runs}, f, indent=0)
    with open(os.path.join(FLAGS.out_dir, "table.md"), "w") as f:
        f.write(table(runs))
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
            with open(os.path.join(FLAGS.out_dir, "gamma_el_resnet26.json"), "w") as f:
                json.dump(run["gamma"], f, indent=1)
    print(table(runs))
    print(f"{len(runs)} finished runs -> {FLAGS.out_dir}")


if __name__ == "__main__":
    app.run(main)

"""Committed run records of a study, read back, and paired comparisons over seeds.

Shared by `study/distillation_report.py` and `study/report_v2.py`. A record folder is
`<recipe>_s<seed>/` as `study/records.sh` saves it: `study.json`, `final_eval.json`,
optionally `final_eval_lce.json`, `metrics.json` and `gamma_report.json` (one-stage
runs) or `<n>_<stage>_metrics.json` / `<n>_<stage>_gamma_report.json` (staged runs).
No flags here, so both reports can import it.
"""

import csv
import glob
import io
import json
import math
import os
import statistics
from collections.abc import Callable

from el_larq.io import write_atomic
from el_larq.stats import t_interval


def load_json(path: str):
    with open(path) as f:
        return json.load(f)


def collect(records: str) -> list[dict]:
    """One entry per finished run record, in folder order.

    # Returns
        Dicts with `recipe`, `seed`, `test_top1`, `lce_top1` (None unless converted),
        `wall_seconds`, `budget` (the study recipe), `stages` (stage name -> per-epoch
        metrics; `"run"` for a one-stage run) and `gamma` (the final model's gamma
        report, `[]` without Elastic-Link gammas).
    """
    runs = []
    for folder in sorted(glob.glob(os.path.join(records, "*_s*"))):
        if not os.path.exists(os.path.join(folder, "final_eval.json")):
            continue
        meta = load_json(os.path.join(folder, "study.json"))
        lce = os.path.join(folder, "final_eval_lce.json")
        stages = {
            os.path.basename(path).removesuffix("_metrics.json"): load_json(path)
            for path in sorted(glob.glob(os.path.join(folder, "[0-9]_*_metrics.json")))
        }
        if not stages and os.path.exists(os.path.join(folder, "metrics.json")):
            stages = {"run": load_json(os.path.join(folder, "metrics.json"))}
        gammas = sorted(glob.glob(os.path.join(folder, "[0-9]_*_gamma_report.json")))
        gamma = os.path.join(folder, "gamma_report.json")
        gamma = gammas[-1] if gammas else gamma  # the last stage's model is the run's
        runs.append(
            {
                "recipe": meta["recipe"],
                "seed": meta["seed"],
                "test_top1": load_json(os.path.join(folder, "final_eval.json"))[0]["top1"],
                "lce_top1": load_json(lce)[0]["top1"] if os.path.exists(lce) else None,
                "wall_seconds": meta["wall_seconds"],
                "budget": meta["study_recipe"],
                "stages": stages,
                "gamma": load_json(gamma) if os.path.exists(gamma) else [],
            }
        )
    return runs


def contrast(
    top1: dict[str, dict[int, float]], weights: dict[str, float]
) -> tuple[float, float, int]:
    """A per-seed contrast of recipes, e.g. `{"a": 1, "b": -1}` for `a - b`.

    # Arguments
        top1: recipe -> seed -> test top-1.
        weights: recipe -> coefficient; the contrast is formed per seed over the seeds
            every recipe in `weights` has (runs of one seed share the data order).

    # Returns
        The mean contrast, the half-width of its 95 % t interval, the number of seeds.
    """
    seeds = set.intersection(*(set(top1.get(recipe, {})) for recipe in weights))
    values = [sum(w * top1[r][s] for r, w in weights.items()) for s in sorted(seeds)]
    mean, half = t_interval(values)
    return mean, half, len(values)


def paired_difference(a: dict[int, float], b: dict[int, float]) -> tuple[float, float, int]:
    """Mean of `a[s] - b[s]` over common seeds and the half-width of its 95 % t interval."""
    return contrast({"a": a, "b": b}, {"a": 1.0, "b": -1.0})


def decided(mean: float, half: float) -> int:
    """The study's one decision rule: +1 when the interval `mean ± half` lies above 0, -1
    when it lies below, 0 (undecided) when it contains 0."""
    return 1 if mean - half > 0 else -1 if mean + half < 0 else 0


def verdict(mean: float, half: float, higher: str, lower: str) -> str:
    """`"higher > lower"` / `"higher < lower"` when the interval excludes 0, else undecided."""
    return {1: f"{higher} > {lower}", -1: f"{higher} < {lower}", 0: "undecided"}[
        decided(mean, half)
    ]


def top1_by_recipe(runs: list[dict]) -> dict[str, dict[int, float]]:
    """recipe -> seed -> test top-1 in percent."""
    top1: dict[str, dict[int, float]] = {}
    for run in runs:
        top1.setdefault(run["recipe"], {})[run["seed"]] = 100 * run["test_top1"]
    return top1


def format_interval(mean: float, half: float, digits: int = 2) -> str:
    """`[low, high]` of a confidence interval, or a dash when there is none."""
    if not math.isfinite(half):
        return "– (one seed)"
    return f"[{mean - half:+.{digits}f}, {mean + half:+.{digits}f}]"


def results_table(runs: list[dict], paper: Callable[[str], str] | None = None) -> str:
    """Test top-1 per recipe: seeds, mean ± sample sd, every seed, wall time per run.

    `paper` (recipe -> text), when given, adds a column, e.g. the paper's numbers.
    """
    by_recipe: dict[str, list[dict]] = {}
    for run in runs:
        by_recipe.setdefault(run["recipe"], []).append(run)
    extra = ("", "") if paper is None else (" paper (ImageNet top-1) |", " --- |")
    lines = [
        "| recipe | seeds | test top-1 mean ± sd (%) | per seed (%) |"
        + extra[0]
        + " wall time per run (s) |",
        "| --- | --- | --- | --- |" + extra[1] + " --- |",
    ]
    for recipe, group in by_recipe.items():
        tops = [100 * r["test_top1"] for r in group]
        sd = f" ± {statistics.stdev(tops):.2f}" if len(tops) > 1 else ""
        seeds = ", ".join(f"s{r['seed']}: {100 * r['test_top1']:.2f}" for r in group)
        wall = statistics.mean(r["wall_seconds"] for r in group)
        column = "" if paper is None else f" {paper(recipe)} |"
        lines.append(
            f"| {recipe} | {len(group)} | {statistics.mean(tops):.2f}{sd} | {seeds} |"
            f"{column} {wall:.0f} |"
        )
    return "\n".join(lines)


def lce_table(runs: list[dict]) -> str:
    """Keras vs LCE-interpreter test top-1 of the runs that were converted (`--strict`)."""
    lines = [
        "| run | Keras test top-1 (%) | LCE test top-1 (%) | difference (points) |",
        "| --- | --- | --- | --- |",
    ]
    for run in runs:
        if run["lce_top1"] is not None:
            keras, lce = 100 * run["test_top1"], 100 * run["lce_top1"]
            name = f"{run['recipe']} s{run['seed']}"
            lines.append(f"| {name} | {keras:.2f} | {lce:.2f} | {lce - keras:+.2f} |")
    return "\n".join(lines) if len(lines) > 2 else ""


def new_figure(size: tuple[float, float]):
    """A matplotlib Figure on the Agg canvas (no pyplot); ImportError without matplotlib."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size)
    FigureCanvasAgg(figure)
    return figure


def write_runs_csv(runs: list[dict], path: str) -> None:
    """One row per run (recipe, seed, test top-1, wall seconds), written atomically."""
    text = io.StringIO()
    fields = ["recipe", "seed", "test_top1", "lce_top1", "wall_seconds"]
    writer = csv.DictWriter(text, fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(runs)
    write_atomic(path, text.getvalue().encode())

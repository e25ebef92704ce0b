"""The paper's orderings and claims, tested on study v2's run records.

What the paper's Tables 1–4 and Fig. 4 claim, as data (`GROUPS`: the rows whose pairwise
orderings a table implies; `CLAIMS` / `GAMMA_CLAIMS`: the headline claims, one contrast
each; `READINGS`: the two downsampling readings), and the markdown tables that answer them
with paired t-based 95 % intervals over seeds. Flag-free, so `study/report_v2.py` (which
writes the report) and tests can import it.
"""

import itertools
import statistics

from study_records import contrast, decided, format_interval, top1_by_recipe

from el_larq.recipes import load_recipe
from el_larq.stats import samples_to_decide, t_interval

# "Seeds to decide": projected up to this many seeds; summarised within these counts.
PROJECTION_LIMIT = 30
PROJECTION_WITHIN = (5, 10)
# (title, paper table, recipes): the rows whose pairwise orderings the paper implies.
# Table 3 compares within one architecture only.
GROUPS = [
    (
        "Table 1: where activation scaling K goes (S-ResNet26)",
        "1",
        [
            "sresnet26",
            "sresnet26_ks",
            "sresnet26_ke",
            "sresnet26_ks_ke",
            "sresnet26_ks_ki",
            "sresnet26_ks_ki_ke",
        ],
    ),
    (
        "Table 2: Elastic-Link's parts (ResNet26)",
        "2",
        ["sresnet26_ks", "el1", "el2", "el3", "el4", "el5", "el_resnet26"],
    ),
    ("Table 3: ResNet26", "3", ["resnet26", "sresnet26_ks", "el_resnet26"]),
    ("Table 3: ResNet18", "3", ["resnet18", "bireal_resnet18", "el_resnet18"]),
    ("Table 3: MobileNet", "3", ["mobilenet", "binary_mobilenet", "el_mobilenet"]),
    (
        "Table 4: the reduce 1x1 conv",
        "4",
        ["sresnet26_ks", "sresnet26_reduce_fp", "el1", "sresnet26_reduce_el_minus"],
    ),
]

# Where a bottleneck downsamples (not a paper ordering: it decides the recipes' default).
READINGS = [
    (
        "EL6: stride on the reduce conv − on the 3x3 conv",
        {"el_resnet26_stride_reduce": 1, "el_resnet26": -1},
    ),
    (
        "baseline (K_s): stride on the reduce conv − on the 3x3 conv",
        {"sresnet26_ks_stride_reduce": 1, "sresnet26_ks": -1},
    ),
    ("EL6 − baseline, stride on the 3x3 conv", {"el_resnet26": 1, "sresnet26_ks": -1}),
    (
        "EL6 − baseline, stride on the reduce conv",
        {"el_resnet26_stride_reduce": 1, "sresnet26_ks_stride_reduce": -1},
    ),
    (
        "EL6's gain over the baseline: reduce reading − 3x3 reading",
        {
            "el_resnet26_stride_reduce": 1,
            "sresnet26_ks_stride_reduce": -1,
            "el_resnet26": -1,
            "sresnet26_ks": 1,
        },
    ),
]


# The paper's headline claims, each answered by one ordering: (claim, paper table, higher,
# lower); the paper's numbers come from the recipes' `paper` rows. A tie is marked "=".
CLAIMS = [
    ("Elastic-Link improves the binary ResNet26 (EL6 over its baseline; Tables 2, 3)", "2",
     "el_resnet26", "sresnet26_ks"),
    ("a link on the reduce conv alone helps (EL1 over the baseline)", "2", "el1", "sresnet26_ks"),
    ("adding the expand link helps (EL2 over EL1)", "2", "el2", "el1"),
    ("adding the max-pooled 3x3 link helps (EL3 over EL2)", "2", "el3", "el2"),
    ("a learnable gamma helps (EL6 over EL3)", "2", "el_resnet26", "el3"),
    ("the block residual is needed (EL3 without it, EL4, below the baseline)", "2",
     "sresnet26_ks", "el4"),
    ("K on the reduce conv still helps with EL (EL6 over EL5)", "2", "el_resnet26", "el5"),
    ("K belongs on the reduce conv: K_s over no K", "1", "sresnet26_ks", "sresnet26"),
    ("K_s over K on the expand conv", "1", "sresnet26_ks", "sresnet26_ke"),
    ("K_s over K on the reduce and expand convs", "1", "sresnet26_ks", "sresnet26_ks_ke"),
    ("K_s over K on all three convs", "1", "sresnet26_ks", "sresnet26_ks_ki_ke"),
    ("K on the 3x3 conv too changes nothing (K_s + K_i = K_s)", "1", "sresnet26_ks_ki",
     "sresnet26_ks"),
    ("a float reduce conv beats the binary one with EL (Table 4)", "4", "sresnet26_reduce_fp",
     "el1"),
    ("EL with the binary reduce conv beats EL alone (EL over EL⁻)", "4", "el1",
     "sresnet26_reduce_el_minus"),
    ("EL alone beats the binary reduce conv (EL⁻ over binary)", "4",
     "sresnet26_reduce_el_minus", "sresnet26_ks"),
    ("EL-ResNet18 over Bi-Real ResNet18 (Table 3)", "3", "el_resnet18", "bireal_resnet18"),
    ("EL-MobileNet over the binary MobileNet (which does not converge)", "3", "el_mobilenet",
     "binary_mobilenet"),
    ("the float ResNet26 stays ahead of EL", "3", "resnet26", "el_resnet26"),
    ("the float ResNet18 stays ahead of EL", "3", "resnet18", "el_resnet18"),
    ("the float MobileNet stays ahead of EL", "3", "mobilenet", "el_mobilenet"),
]  # fmt: skip
# Fig. 4's claims on EL-ResNet26's gammas, under both downsampling readings (in the
# paper's, only the reduce conv of a downsampling block downsamples): (recipe, reading) and
# (claim, paper, link kinds, downsampling block, the sign the paper reports).
GAMMA_READINGS = [
    ("el_resnet26_stride_reduce", "stride on the reduce conv"),
    ("el_resnet26", "stride on the 3x3 conv"),
]
REDUCE = ("squeeze", "identity")
GAMMA_CLAIMS = [
    ("reduce gammas of downsampling blocks rose", "rose substantially", REDUCE, True, 1),
    ("the other reduce gammas rose", "rose", REDUCE, False, 1),
    ("expand gammas fell (downsampling blocks)", "fell slightly", ("expand",), True, -1),
    ("expand gammas fell (other blocks)", "fell slightly", ("expand",), False, -1),
]  # fmt: skip
# The claims section of the summary page lies between these markers.
CLAIMS_BEGIN = "<!-- claims: written by study/report_v2.py; do not edit -->"
CLAIMS_END = "<!-- end of claims -->"


def paper_top1(recipe: str, table: str) -> float | None:
    """The paper's ImageNet top-1 of `recipe` in `table` (None: did not converge)."""
    for row in load_recipe(recipe)["paper"]:
        if row["table"] == table:
            return row["imagenet_top1"]
    raise ValueError(f"recipe {recipe} has no row of Table {table}")


def _rank(top1: float | None) -> float:
    return float("-inf") if top1 is None else top1


def _paper_text(top1: float | None) -> str:
    return "n/c" if top1 is None else f"{top1:.1f}"


def paper_column(recipe: str) -> str:
    rows = load_recipe(recipe)["paper"]
    return "; ".join(f"T{r['table']} {r['row']}: {_paper_text(r['imagenet_top1'])}" for r in rows)


def judge(mean: float, half: float, tie: bool = False) -> str:
    """The verdict on a paper ordering measured as `mean ± half` (higher − lower)."""
    sign = decided(mean, half)
    if tie:
        return "differ" if sign else "no difference found (paper: tie)"
    return {1: "**reproduced**", -1: "**reversed**", 0: "undecided"}[sign]


def _paired(a: str, b: str, table: str) -> tuple[str, str, float | None, float | None, bool]:
    """`a` and `b` ordered as the paper ranks them in `table`, their paper top-1 and whether
    the paper has them equal."""
    pa, pb = paper_top1(a, table), paper_top1(b, table)
    if _rank(pa) < _rank(pb):
        a, b, pa, pb = b, a, pb, pa
    return a, b, pa, pb, _rank(pa) == _rank(pb)


def orderings(runs: list[dict]) -> tuple[str, dict[str, int], dict[int, int]]:
    """Every ordering the paper's tables imply, tested; how many got each verdict; and
    how many undecided ones would be decided within 5 and 10 seeds (a projection)."""
    top1 = top1_by_recipe(runs)
    counts = {"reproduced": 0, "reversed": 0, "undecided": 0, "not run": 0}
    projected = dict.fromkeys(PROJECTION_WITHIN, 0)
    lines = []
    for title, table, recipes in GROUPS:
        lines += [
            f"### {title}",
            "",
            "| paper (ImageNet top-1) | seeds | mean difference (points) | 95 % CI | verdict "
            "| seeds to decide (projection) |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for a, b in itertools.combinations(recipes, 2):
            a, b, pa, pb, tie = _paired(a, b, table)
            claim = f"`{a}` {_paper_text(pa)} {'=' if tie else '>'} `{b}` {_paper_text(pb)}"
            mean, half, n = contrast(top1, {a: 1, b: -1})
            if n < 2:
                counts["not run"] += 1
                lines.append(f"| {claim} | {n} | – | – | not run (needs 2 seeds of each) | – |")
                continue
            result = judge(mean, half, tie)
            needed = "–"
            if not tie:
                counts[result.strip("*")] += 1
            if result == "undecided":
                seeds = samples_to_decide(mean, half, n, limit=PROJECTION_LIMIT)
                needed = f"> {PROJECTION_LIMIT}" if seeds is None else str(seeds)
                for within in projected:
                    projected[within] += seeds is not None and seeds <= within
            interval = format_interval(mean, half)
            lines.append(f"| {claim} | {n} | {mean:+.2f} | {interval} | {result} | {needed} |")
        lines.append("")
    return "\n".join(lines), counts, projected


def readings(runs: list[dict]) -> str:
    top1 = top1_by_recipe(runs)
    lines = [
        "| contrast | seeds | mean (points) | 95 % CI |",
        "| --- | --- | --- | --- |",
    ]
    for title, weights in READINGS:
        mean, half, n = contrast(top1, weights)
        if n == 0:
            lines.append(f"| {title} | 0 | – | – |")
            continue
        lines.append(f"| {title} | {n} | {mean:+.2f} | {format_interval(mean, half)} |")
    return "\n".join(lines)


def downsamples(layer: str) -> bool:
    """Whether a gamma sits in a block that downsamples: the first block of stage 2 on."""
    stage, block = layer.split("_")[:2]
    return block == "block1" and stage not in ("stage1", "stage0")


def gamma_runs(runs: list[dict]) -> dict[str, list[dict]]:
    """Recipe -> its runs, for the recipes with trainable gammas."""
    by_recipe: dict[str, list[dict]] = {}
    for run in runs:
        if any(row["trainable"] for row in run["gamma"]):
            by_recipe.setdefault(run["recipe"], []).append(run)
    return by_recipe


def _gamma_moves(
    group: list[dict], kinds: tuple[str, ...], down: bool
) -> tuple[list[float], list[float]]:
    """Per run, the mean change of the gammas of `kinds` in (non-)downsampling blocks; and
    every such change."""
    per_seed, every = [], []
    for run in group:
        changes = [
            row["change"]
            for row in run["gamma"]
            if row["kind"] in kinds and downsamples(row["layer"]) == down
        ]
        if changes:
            per_seed.append(statistics.mean(changes))
            every += changes
    return per_seed, every


def gamma_changes(runs: list[dict]) -> str:
    """Fig. 4's question: per recipe, link kind and downsampling, how the gammas moved."""
    lines = [
        "| recipe | link | block | gammas per run | runs | rose / fell (all runs) "
        "| mean change (final − initial) | 95 % CI over seeds |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for recipe, group in gamma_runs(runs).items():
        for kind, down in itertools.product(("squeeze", "identity", "expand"), (True, False)):
            per_seed, every = _gamma_moves(group, (kind,), down)
            if not every:
                continue
            mean, half = t_interval(per_seed)
            rose = sum(change > 0 for change in every)
            link = {"squeeze": "reduce (Squeeze)", "identity": "reduce (Identity)"}.get(kind, kind)
            lines.append(
                f"| `{recipe}` | {link} | {'downsampling' if down else 'other'} "
                f"| {len(every) // len(per_seed)} | {len(per_seed)} | {rose} / {len(every) - rose} "
                f"| {mean:+.4f} | {format_interval(mean, half, digits=4)} |"
            )
    return "\n".join(lines)


def claims(runs: list[dict]) -> str:
    """The paper's headline claims (`CLAIMS`, `GAMMA_CLAIMS`), each with its interval."""
    top1 = top1_by_recipe(runs)
    lines = [
        "| the paper's claim | paper (ImageNet top-1) | here: mean difference, 95 % CI (seeds) "
        "| verdict |",
        "| --- | --- | --- | --- |",
    ]
    for claim, table, a, b in CLAIMS:
        a, b, pa, pb, tie = _paired(a, b, table)
        paper = f"{_paper_text(pa)} {'=' if tie else '>'} {_paper_text(pb)}"
        mean, half, n = contrast(top1, {a: 1, b: -1})
        if n < 2:
            lines.append(f"| {claim} | {paper} | – ({n} seeds) | not run |")
            continue
        here = f"{mean:+.2f} points, {format_interval(mean, half)} ({n})"
        lines.append(f"| {claim} | {paper} | {here} | {judge(mean, half, tie)} |")
    by_recipe = gamma_runs(runs)
    for (recipe, reading), (what, paper, kinds, down, sign) in itertools.product(
        GAMMA_READINGS, GAMMA_CLAIMS
    ):
        claim = f"Fig. 4 ({reading}): {what}"
        per_seed, _ = _gamma_moves(by_recipe.get(recipe, []), kinds, down)
        if len(per_seed) < 2:
            lines.append(f"| {claim} | {paper} | – ({len(per_seed)} seeds) | not run |")
            continue
        mean, half = t_interval(per_seed)
        here = f"{mean:+.3f} (gamma), {format_interval(mean, half, digits=3)} ({len(per_seed)})"
        lines.append(f"| {claim} | {paper} | {here} | {judge(sign * mean, half)} |")
    return "\n".join(lines)


def splice_claims(page: str, table: str) -> str | None:
    """`page` with the text between `CLAIMS_BEGIN` and `CLAIMS_END` replaced by `table`;
    None when the page lacks either marker."""
    begin, end = page.find(CLAIMS_BEGIN), page.find(CLAIMS_END)
    if begin < 0 or end < begin:
        return None
    return f"{page[: begin + len(CLAIMS_BEGIN)]}\n{table}\n{page[end:]}"

"""study/report_v2.py (with study/verdicts_v2.py), study/study_records.py and study/records.sh
on hand-made run records."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "study"))
import study_records  # noqa: E402  (a script folder, not a package)

# EL6 beats the baseline by 3.0, 3.5, 3.0 points: mean 3.1667, sd 0.2887, t(2) 4.303 ->
# half-width 0.7172. EL6 against EL5: +1, -3, +2: mean 0, sd 2.6458, half-width 6.573.
# EL5 against the baseline: +2, +6.5, +1: mean 3.1667, sd 2.9297, half-width 7.28; the interval
# would exclude 0 from 6 seeds on (t(5) 2.571 x 2.9297 / sqrt 6 = 3.08 < 3.17; 5: 3.64).
TOP1 = {
    "sresnet26_ks": [70.0, 71.0, 72.0],
    "el_resnet26": [73.0, 74.5, 75.0],
    "el5": [72.0, 77.5, 73.0],
}


def _gammas(seed: int) -> list[dict]:
    # (layer, kind, initial, change): the downsampling reduce gamma rises, the others fall.
    rows = [
        ("stage1_block2_reduce_el", "squeeze", 4.0, -0.01 * (seed + 1)),
        ("stage2_block1_reduce_el", "squeeze", 2.0, 0.10 + 0.01 * seed),
        ("stage2_block1_expand_el", "expand", 4.0, -0.02),
    ]
    return [
        {"layer": layer, "block": layer.rsplit("_", 2)[0], "kind": kind, "initial": initial,
         "value": initial + change, "change": change, "trainable": True}
        for layer, kind, initial, change in rows
    ]  # fmt: skip


def _write_records(records: Path) -> None:
    for recipe, tops in TOP1.items():
        for seed, top1 in enumerate(tops):
            folder = records / f"{recipe}_s{seed}"
            folder.mkdir(parents=True)
            meta = {"recipe": recipe, "seed": seed, "wall_seconds": 100.0 + seed,
                    "study_recipe": {"epochs": "20"}}  # fmt: skip
            (folder / "study.json").write_text(json.dumps(meta))
            (folder / "final_eval.json").write_text(json.dumps([{"top1": top1 / 100}]))
            rows = [{"epoch": 1, "val_top1": 0.5}, {"epoch": 2, "val_top1": top1 / 100}]
            (folder / "metrics.json").write_text(json.dumps(rows))
            gammas = _gammas(seed) if recipe == "el_resnet26" else []
            (folder / "gamma_report.json").write_text(json.dumps(gammas))
    lce = [{"top1": 0.7301, "examples": 10000}]
    (records / "el_resnet26_s0" / "final_eval_lce.json").write_text(json.dumps(lce))


def _report(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "study" / "report_v2.py"), *args],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip


def test_report_v2_tables_verdicts_gammas_and_figures(tmp_path):
    records, out = tmp_path / "records", tmp_path / "out"
    _write_records(records)
    result = _report("--records", str(records), "--out_dir", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    page = (out / "results.md").read_text()
    assert "| sresnet26_ks | 3 | 71.00 ± 1.00 | s0: 70.00, s1: 71.00, s2: 72.00 |" in page
    el6_baseline = "| `el_resnet26` 64.0 > `sresnet26_ks` 59.8 | 3 | +3.17 | [+2.45, +3.88] |"
    assert f"{el6_baseline} **reproduced** | – |" in page
    el5_baseline = "| `el5` 63.6 > `sresnet26_ks` 59.8 | 3 | +3.17 | [-4.11, +10.45] |"
    assert f"{el5_baseline} undecided | 6 |" in page
    assert (
        "| `el_resnet26` 64.0 > `el5` 63.6 | 3 | +0.00 | [-6.57, +6.57] | undecided | > 30 |"
        in page
    )
    # Table 3 names the baseline by its Table 3 row (Bi-Real RN26 57.8).
    assert "| `el_resnet26` 64.0 > `sresnet26_ks` 57.8 | 3 | +3.17 |" in page
    assert "| `el1` 61.8 > `sresnet26_ks` 59.8 | 0 | – | – | not run" in page
    assert "Strict orderings: 2 reproduced, 0 reversed, 2 undecided," in page
    assert "Of the 2 undecided orderings, 0 within 5 seeds and 1 within 10 seeds would be" in page
    # Fig. 4: the downsampling reduce gammas rose by 0.10, 0.11, 0.12 (mean +0.11).
    assert "| `el_resnet26` | reduce (Squeeze) | downsampling | 1 | 3 | 3 / 0 | +0.1100 |" in page
    assert "| `el_resnet26` | reduce (Squeeze) | other | 1 | 3 | 0 / 3 | -0.0200 |" in page
    assert (
        "| `el_resnet26` | expand | downsampling | 1 | 3 | 0 / 3 | -0.0200 | [-0.0200, -0.0200] |"
        in page
    )
    assert "| el_resnet26 s0 | 73.00 | 73.01 | +0.01 |" in page
    for png in ("summary.png", "curves.png", "gamma.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    assert len((out / "runs.csv").read_text().splitlines()) == 1 + 9
    # The claims table: the EL6 claim, a claim without runs, Fig. 4's downsampling reduce
    # gammas (+0.11 > 0 over every seed) and expand gammas (-0.02 < 0: fell, as claimed).
    el6 = "| Elastic-Link improves the binary ResNet26 (EL6 over its baseline; Tables 2, 3) "
    assert f"{el6}| 64.0 > 59.8 | +3.17 points, [+2.45, +3.88] (3) | **reproduced** |" in page
    assert "| EL-ResNet18 over Bi-Real ResNet18 (Table 3) | 60.1 > 56.4 | – (0 seeds) |" in page
    # The hand-made gammas are `el_resnet26`'s: the stride-on-the-3x3-conv reading.
    fig4 = "| Fig. 4 (stride on the 3x3 conv): "
    assert (
        f"{fig4}reduce gammas of downsampling blocks rose | rose substantially | +0.110 (gamma), "
        "[+0.085, +0.135] (3) | **reproduced** |"
    ) in page
    assert (
        f"{fig4}expand gammas fell (downsampling blocks) | fell slightly | -0.020 (gamma), "
        "[-0.020, -0.020] (3) | **reproduced** |"
    ) in page
    no_runs = (
        "| Fig. 4 (stride on the reduce conv): the other reduce gammas rose | rose | – (0 seeds) |"
    )
    assert f"{no_runs} not run |" in page
    assert page.index("## The paper's claims") < page.index("## Test top-1")
    assert not (tmp_path / "README.md").exists()  # no summary page beside out/: none written


def test_report_v2_rewrites_only_the_claims_section_of_the_summary(tmp_path):
    records, out, summary = tmp_path / "records", tmp_path / "out", tmp_path / "README.md"
    _write_records(records)
    begin, end = (
        "<!-- claims: written by study/report_v2.py; do not edit -->",
        "<!-- end of claims -->",
    )
    summary.write_text(f"# Results\n\nBefore.\n{begin}\nold table\n{end}\nAfter.\n")
    result = _report("--records", str(records), "--out_dir", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    text = summary.read_text()
    assert text.startswith(f"# Results\n\nBefore.\n{begin}\n| the paper's claim |")
    assert text.endswith(f"|\n{end}\nAfter.\n") and "old table" not in text
    claims = text[text.index(begin) : text.index(end)]
    assert claims.split("\n", 1)[1] in (out / "results.md").read_text()


def test_report_v2_summary_without_markers_is_one_line_error(tmp_path):
    records, out, page = tmp_path / "records", tmp_path / "out", tmp_path / "page.md"
    _write_records(records)
    page.write_text("# My notes\n")
    result = _report("--records", str(records), "--out_dir", str(out), "--summary", str(page))
    assert result.returncode != 0
    assert (
        result.stderr.strip().splitlines()[-1].startswith(f"report_v2.py: error: --summary {page}")
    )
    assert page.read_text() == "# My notes\n" and not out.exists()


def test_report_v2_without_records_is_one_line_error(tmp_path):
    result = _report("--records", str(tmp_path / "none"), "--out_dir", str(tmp_path / "out"))
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith("report_v2.py: error: no finished")
    assert not (tmp_path / "out").exists()


def test_contrast_uses_only_seeds_every_recipe_has():
    top1 = {"a": {0: 5.0, 1: 6.0, 2: 9.0}, "b": {0: 1.0, 1: 1.0}, "c": {0: 1.0, 1: 2.0}}
    mean, _, n = study_records.contrast(top1, {"a": 1, "b": -1, "c": -1})
    assert (mean, n) == (pytest.approx(3.0), 2)  # seed 0: 3, seed 1: 3; seed 2 is not in b


def _records_sh(tmp_path: Path, function: str) -> subprocess.CompletedProcess:
    script = f"RUNS={tmp_path}/runs RESULTS={tmp_path}/records; source study/records.sh; {function}"
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, cwd=ROOT)


def test_records_sh_saves_finished_runs_and_restores_them(tmp_path):
    run = tmp_path / "runs" / "el_resnet26_s0"
    run.mkdir(parents=True)
    for name in ("study.json", "final_eval.json", "metrics.json", "gamma_report.json"):
        (run / name).write_text(f'"{name}"')
    (run / "model.h5").write_bytes(b"big")
    unfinished = tmp_path / "runs" / "el1_s0"
    unfinished.mkdir()
    (unfinished / "metrics.json").write_text("[]")
    finishing = tmp_path / "runs" / "el2_s0"  # evaluated, its study.json not written yet
    finishing.mkdir()
    (finishing / "final_eval.json").write_text("{}")
    assert _records_sh(tmp_path, "save x").returncode == 0
    assert not (tmp_path / "records" / "el2_s0").exists()
    saved = tmp_path / "records" / "el_resnet26_s0"
    assert sorted(p.name for p in saved.iterdir()) == [
        "final_eval.json", "gamma_report.json", "metrics.json", "study.json"
    ]  # fmt: skip
    assert not (tmp_path / "records" / "el1_s0").exists()
    # A new machine has the records but no runs/: restore puts them back, so they are skipped.
    for path in (tmp_path / "runs").rglob("*"):
        if path.is_file():
            path.unlink()
    assert _records_sh(tmp_path, "restore").returncode == 0
    assert (run / "final_eval.json").read_text() == '"final_eval.json"'
    assert not (unfinished / "final_eval.json").exists()
    # A run that is there already is left as it is.
    (run / "final_eval.json").write_text('"newer"')
    assert _records_sh(tmp_path, "restore").returncode == 0
    assert (run / "final_eval.json").read_text() == '"newer"'

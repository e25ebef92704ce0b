"""study/: the reproduction pipeline end to end (real subprocesses) and its ordering verdicts."""

import csv
import functools
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import make_idx_dataset

ROOT = Path(__file__).resolve().parents[1]
RUN_STUDY = str(ROOT / "study" / "run_study.py")
REPORT = str(ROOT / "study" / "report.py")
TINY = "width=0.125,epochs=1,steps_per_epoch=2,batch_size=16,validation_steps=1"


def _run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *cmd], capture_output=True, text=True, timeout=900, cwd=ROOT
    )


@functools.cache  # report.py defines absl flags: import it once
def _report_module():
    spec = importlib.util.spec_from_file_location("study_report", ROOT / "study" / "report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_study_trains_evaluates_converts_el6_and_reports(tmp_path):
    # 256 test images: the --strict conversion of a net trained 2 steps is verified on
    # all of them (run_study's --verify_samples), where one sign flip costs 0.4 points of
    # top-1 agreement, not 6 as on 16.
    data = make_idx_dataset(tmp_path / "fashion", train=64, test=256)
    runs, out = tmp_path / "runs", tmp_path / "results"
    args = ["--only", "el_resnet26", "--seeds", "0", "--runs_dir", str(runs)]
    args += ["--data_dir", data, "--set", TINY]
    first = _run(RUN_STUDY, *args)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    run = runs / "el_resnet26_s0"
    for name in ("model.h5", "model.tflite", "final_eval.json", "final_eval_lce.json"):
        assert (run / name).exists(), name
    meta = json.loads((run / "study.json").read_text())
    assert meta["study_recipe"]["width"] == "0.125"  # the changed recipe is recorded
    assert json.loads((run / "final_eval_lce.json").read_text())[0]["examples"] == 256
    assert "verification on 256 inputs" in (run / "log.txt").read_text()
    assert "el_resnet26                  seed 0: ok" in first.stdout

    second = _run(RUN_STUDY, *args)  # idempotent: nothing is trained again
    assert second.returncode == 0 and "done before" in second.stdout

    report = _run(REPORT, "--runs_dir", str(runs), "--out_dir", str(out))
    assert report.returncode == 0, report.stderr[-3000:]
    table = (out / "table.md").read_text()
    assert "| `el_resnet26` |" in table and "T2 EL6: 64.0" in table
    assert "of 256 |" in table  # LCE vs Keras on the test set
    assert "| seed 0 | squeeze (reduce conv) | 7 |" in table  # gamma trend (7 Squeeze)
    assert "not run (needs 2 seeds of each)" in table
    with open(out / "runs.csv") as f:
        assert [row["recipe"] for row in csv.DictReader(f)] == ["el_resnet26"]
    assert (out / "baseline_vs_el6_curves.png").stat().st_size > 0
    assert (out / "gamma_el_resnet26.png").stat().st_size > 0


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--set", "epochz=1"], "--set 'epochz=1': expected KEY=VALUE with KEY in "
         "['batch_norm_momentum', 'batch_size',"),
        (["--set", "epochs=two"], "--set epochs='two': epochs must be a positive integer."),
        (["--set", "lr_decay_epochs=50,80"], "--set lr_decay_epochs='50,80': lr_decay_epochs "
                                             "must be fractions in (0, 1), comma-separated."),
        (["--only", "el_resnet26,el_resnet27"], "unknown configuration 'el_resnet27' in --only; "
                                                "valid: binary_mobilenet, "),
        (["--seeds", "0,-1"], "--seeds '-1': a seed is an integer in [0, 2**32)."),
        (["--seeds", "0,zero"], "--seeds 'zero': a seed is an integer in [0, 2**32)."),
        (["--seeds", "1,01"], "--seeds and --only must not repeat a value."),
        (["--data_dir", "/nowhere/fashion"], "--data_dir /nowhere/fashion is not a directory."),
        (["--jobs", "0"], "flag --jobs=0: 0 is not a positive integer"),
        (["--verify_samples", "0"], "flag --verify_samples=0: 0 is not a positive integer"),
        (["--runs_dir", "/proc/version/runs"], "cannot create or write --runs_dir "
                                               "/proc/version/runs: /proc/version is not a "),
    ],
)  # fmt: skip
def test_bad_arguments_are_refused_before_anything_runs(tmp_path, args, expected):
    result = _run(RUN_STUDY, "--runs_dir", str(tmp_path / "runs"), *args)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("run_study.py: error: ") and expected in line
    assert not (tmp_path / "runs").exists()


def test_report_without_runs_says_what_to_run(tmp_path):
    result = _run(REPORT, "--runs_dir", str(tmp_path / "none"), "--out_dir", str(tmp_path / "o"))
    assert result.returncode != 0 and "run_study.py" in result.stderr


def _runs(**accuracies: list[float]) -> list[dict]:
    return [
        {"recipe": recipe, "seed": seed, "test_top1": acc / 100}
        for recipe, accs in accuracies.items()
        for seed, acc in enumerate(accs)
    ]


@pytest.mark.parametrize(
    "el6, baseline, verdict",
    [
        ([72.0, 73.0], [70.0, 71.0], "**reproduced**"),
        ([70.0, 71.0], [72.0, 73.0], "**reversed**"),
        ([71.0, 73.0], [70.0, 72.0], "same direction, seeds overlap"),
        ([70.0, 72.0], [71.0, 73.0], "opposite direction, seeds overlap"),
    ],
)
def test_ordering_verdicts(el6, baseline, verdict):
    table = _report_module().orderings(_runs(el_resnet26=el6, sresnet26_ks=baseline))
    row = next(line for line in table.splitlines() if line.startswith("| Table 2: EL6 64.0 >"))
    assert verdict in row
    difference = sum(el6) / 2 - sum(baseline) / 2
    assert f"| {difference:+.2f} |" in row


def test_ordering_needs_two_seeds_of_each():
    table = _report_module().orderings(_runs(el_resnet26=[72.0], sresnet26_ks=[70.0, 71.0]))
    row = next(line for line in table.splitlines() if line.startswith("| Table 2: EL6 64.0 >"))
    assert "not run" in row


def test_distillation_report_from_records(tmp_path):
    # Two recipes, two seeds each, records as study/reactnet_study.sh commits them.
    records = tmp_path / "records"
    tops = {("a", 0): 0.70, ("a", 1): 0.74, ("b", 0): 0.69, ("b", 1): 0.72}
    for (recipe, seed), top1 in tops.items():
        folder = records / f"{recipe}_s{seed}"
        folder.mkdir(parents=True)
        meta = {"recipe": recipe, "seed": seed, "wall_seconds": 10.0, "study_recipe": {"w": "1"}}
        (folder / "study.json").write_text(json.dumps(meta))
        (folder / "final_eval.json").write_text(json.dumps([{"top1": top1}]))
        rows = [{"epoch": 1, "val_top1": top1 - 0.1}, {"epoch": 2, "val_top1": top1}]
        (folder / "1_step1_metrics.json").write_text(json.dumps(rows))
    lce = [{"top1": 0.7399, "format": "lce"}]  # a converted run (run_study --lce_check)
    (records / "a_s1" / "final_eval_lce.json").write_text(json.dumps(lce))
    out = tmp_path / "out"
    script = str(ROOT / "study" / "distillation_report.py")
    result = _run(script, "--records", str(records), "--out_dir", str(out), "--compare", "a:b")
    assert result.returncode == 0, result.stderr[-2000:]
    page = (out / "results.md").read_text()
    # Differences 1.0 and 2.0 points: mean 1.5, sd 0.707, t(1) 12.706 -> half-width 6.35.
    assert "| a − b | 2 | +1.50 | [-4.85, +7.85] | undecided |" in page
    assert "| a | 2 | 72.00 ± 2.83 | s0: 70.00, s1: 74.00 | 10 |" in page
    assert "| a s1 | 74.00 | 73.99 | -0.01 |" in page and "| a s0 |" not in page
    assert (out / "curves.png").stat().st_size > 0
    assert len((out / "runs.csv").read_text().splitlines()) == 5

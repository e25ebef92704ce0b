"""What el_larq needs at import and at run time: LCE only to convert or interpret, matplotlib
only to plot (the `plot` extra). Each check runs in a fresh interpreter (real subprocess)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Makes `import matplotlib` fail as when the extra is not installed.
NO_MATPLOTLIB = "import sys; sys.modules['matplotlib'] = None\n"


def python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=cwd
    )


def test_training_and_model_summary_do_not_import_lce(tmp_path):
    code = """
import sys
import el_larq.training, el_larq.recipes, el_larq.cli.train
from el_larq.summary import model_summary
from el_larq.zoo import get_model
model = get_model("el_resnet26", input_shape=(32, 32, 3), num_classes=10, width=0.25)
assert model_summary(model)["gammas"] == 15
print(sorted(m for m in sys.modules if m.split(".")[0] == "larq_compute_engine"))
import el_larq.deploy.conversion  # the control: conversion does import it
print("larq_compute_engine" in sys.modules)
"""
    result = python(code, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["[]", "True"]


def test_without_matplotlib_plots_say_how_to_get_it_and_training_still_writes(tmp_path):
    code = (
        NO_MATPLOTLIB
        + """
from el_larq import training
from el_larq.summary import plot_gamma_report
from el_larq.zoo import get_model
model = get_model("el_resnet26", input_shape=(32, 32, 3), num_classes=10, width=0.25)
report = training.loop._gamma_outputs(model, ".")  # what a finished training run writes
try:
    plot_gamma_report(report, "gamma.png")
except ImportError as error:
    print("ImportError:", error)
"""
    )
    result = python(code, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    advice = "needs matplotlib, which is not installed: pip install 'el-larq[plot]'"
    assert f"ImportError: plot_gamma_report {advice}" in result.stdout
    assert f"gamma_report.png skipped: the gamma plot {advice}" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gamma_report.json"]


def test_without_matplotlib_the_study_report_is_one_line_and_writes_nothing(tmp_path):
    script = ROOT / "study" / "report.py"
    code = NO_MATPLOTLIB + (
        f"import runpy; sys.argv = [{str(script)!r}, '--runs_dir', '.', '--out_dir', 'out']\n"
        f"runpy.run_path({str(script)!r}, run_name='__main__')"
    )
    result = python(code, tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "report.py: error: the report needs matplotlib, which is not installed: "
        "pip install 'el-larq[plot]' (or pip install matplotlib)"
    )
    assert list(tmp_path.iterdir()) == []

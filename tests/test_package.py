"""el-larq as a user installs it: a wheel, no checkout on the path, run from elsewhere.

The wheel is built from a copy of the package sources (a build writes `build/` and
`*.egg-info` into the tree it builds), installed with `pip install --no-deps --target`
into a fresh directory, and used with this environment's TensorFlow/larq/LCE through
`PYTHONPATH` from a directory that is neither the checkout nor the install.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ["setup.cfg", "pyproject.toml", "README.md", "el_larq"]


def _snapshot(directory: Path) -> dict[str, int]:
    return {
        str(path.relative_to(directory)): path.stat().st_mtime_ns
        for path in directory.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """`(site, bin, env)`: where the wheel's package and console script went."""
    base = tmp_path_factory.mktemp("package")
    source = base / "source"
    source.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(
                ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copy(ROOT / name, source / name)
    wheels = base / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", wheels, source],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = wheels.glob("el_larq-*.whl")
    site = base / "site"
    subprocess.run(
        [*pip, "install", "--no-deps", "--no-compile", "--target", site, wheel],
        check=True,
        capture_output=True,
        timeout=300,
    )
    env = {**os.environ, "PYTHONPATH": str(site), "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("EL_LARQ_RECIPES", None)
    return site, site / "bin", env


def run(argv, cwd, env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=300, cwd=cwd, env=env
    )


def test_wheel_gives_recipes_and_commands_and_converts_from_elsewhere(installed, tmp_path):
    site, bin_dir, env = installed
    before = _snapshot(site)
    work = tmp_path / "work"
    work.mkdir()

    # The package comes from the install, not from the checkout (editable finder, cwd).
    where = run([sys.executable, "-c", "import el_larq; print(el_larq.__file__)"], work, env)
    assert where.returncode == 0, where.stderr[-2000:]
    assert where.stdout.strip() == str(site / "el_larq" / "__init__.py")

    # Recipes ship as package data: the console command lists all of them.
    listed = run([bin_dir / "el-larq", "recipes"], work, env)
    assert listed.returncode == 0, listed.stderr[-2000:]
    names = [line.split()[0] for line in listed.stdout.splitlines()]
    shipped = sorted(path.stem for path in (ROOT / "el_larq" / "recipe_files").glob("*.json"))
    assert sorted(names) == shipped and "el_resnet26" in names and "el_reactnet" in names

    # Build one recipe's model and convert it with the console command.
    build = (
        "import el_larq; from el_larq.recipes import build_recipe; "
        "from el_larq.deploy.profile import as_if_trained; "
        "m = build_recipe('el_resnet18', input_shape=(16, 16, 3), num_classes=10, width=0.25); "
        "as_if_trained(m).save('m.h5')"
    )
    built = run([sys.executable, "-c", build], work, env)
    assert built.returncode == 0, built.stderr[-2000:]
    converted = run(
        [bin_dir / "el-larq", "convert", "m.h5", "--json", "report.json", "--samples", 4],
        work,
        env,
    )
    assert converted.returncode == 0, converted.stderr[-2000:]
    assert "binarized standard convs accelerated (LceBconv2d): 16/16" in converted.stdout
    assert ": PASS" in converted.stdout
    census = json.loads((work / "report.json").read_text())["census"]
    assert census["ops"]["LceBconv2d"] == 16 and not census["fallback"]
    assert sorted(os.listdir(work)) == ["m.h5", "m.tflite", "report.json"]
    timed = run([bin_dir / "el-larq", "benchmark", "m.tflite", "--num_runs", 2], work, env)
    assert timed.returncode == 0, timed.stderr[-2000:]
    assert "| m | host " in timed.stdout

    # `python -m el_larq` is the same command; outputs go where the user says.
    out = tmp_path / "elsewhere"
    out.mkdir()
    again = run(
        [sys.executable, "-m", "el_larq", "convert", "m.h5", "-o", out / "x.tflite", "--no-verify"],
        work,
        env,
    )
    assert again.returncode == 0, again.stderr[-2000:]
    assert os.listdir(out) == ["x.tflite"]
    assert _snapshot(site) == before  # nothing written into the installed package


def test_whole_workflow_with_the_console_command_from_an_empty_directory(installed, tmp_path):
    # train -> convert -> evaluate -> benchmark, all with `el-larq` from the wheel.
    from helpers import make_idx_dataset

    site, bin_dir, env = installed
    # 256 test images to verify on: with 8, one sign flip of a net trained 2 steps
    # would fail the 95 % top-1 agreement on its own.
    data = make_idx_dataset(tmp_path / "fashion", train=32, test=256, size=16)
    work = tmp_path / "empty"
    work.mkdir()
    tool = bin_dir / "el-larq"
    trained = run(
        [tool, "train", "--model", "el_resnet18", "--width", "0.125", "--epochs", "1",
         "--batch_size", "8", "--steps_per_epoch", "2", "--validation_steps", "1",
         "--data_dir", data, "--output_dir", "run", "--verbose", "2"],
        work, env,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert (work / "run" / "model.h5").exists()
    converted = run([tool, "convert", "run/model.h5", "--dataset", "fashion_mnist",
                     "--data_dir", data, "--samples", 256], work, env)  # fmt: skip
    assert converted.returncode == 0, converted.stderr[-2000:]
    assert "(LceBconv2d): 16/16" in converted.stdout
    assert "verification on 256 inputs" in converted.stdout
    evaluated = run(
        [tool, "evaluate", "--model", "run/model.h5", "--model", "run/model.tflite",
         "--dataset", "fashion_mnist", "--data_dir", data, "--json", "eval.json"],
        work, env,
    )  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    results = json.loads((work / "eval.json").read_text())
    assert [r["examples"] for r in results] == [256, 256]
    timed = run([tool, "benchmark", "run/model.tflite", "--num_runs", 2], work, env)
    assert timed.returncode == 0, timed.stderr[-2000:]
    assert sorted(os.listdir(work)) == ["eval.json", "run"]

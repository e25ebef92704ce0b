"""train/train.py and train/evaluate.py as real subprocesses: tiny runs, resume, bad input."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest
import tensorflow as tf
from helpers import make_idx_dataset

from el_larq import data
from el_larq.deploy.conversion import convert
from el_larq.deploy.flatbuffer import op_counts
from el_larq.deploy.loading import load_model

ROOT = Path(__file__).resolve().parents[1]
TRAIN = str(ROOT / "train" / "train.py")
EVALUATE = str(ROOT / "train" / "evaluate.py")
TINY = ["--width", "0.125", "--batch_size", "8", "--validation_steps", "1", "--verbose", "2"]
OUTPUTS = [
    "model.h5",
    "checkpoints/last.h5",
    "checkpoints/best.h5",
    "logs/train",
    "logs/validation",
    "metrics.csv",
    "metrics.json",
    "curves.png",
    "gamma_report.json",
    "gamma_report.png",
    "curves.png",
    "command.txt",
    "config.json",
]


def run(args, timeout=300, **kwargs):
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT, **kwargs
    )


def check_outputs(out: Path):
    missing = [name for name in OUTPUTS if not (out / name).exists()]
    assert not missing, f"missing outputs: {missing}"
    assert not (out / "backup").exists()  # removed once model.h5 is written
    assert list((out / "logs" / "train").glob("events.out.tfevents.*"))
    report = json.loads((out / "gamma_report.json").read_text())
    assert report and {"layer", "kind", "initial", "value"} <= set(report[0])


@pytest.fixture(scope="module")
def idx_dir(tmp_path_factory):
    return make_idx_dataset(tmp_path_factory.mktemp("fashion"), train=64, test=16)


@pytest.mark.smoke
def test_idx_run_resumes_after_kill_converts_and_evaluates(idx_dir, tmp_path):
    out = tmp_path / "run"
    command = [TRAIN, "--model", "el_resnet26", "--epochs", "3", "--steps_per_epoch", "6"]
    command += ["--backup_steps", "2", "--data_dir", idx_dir, "--output_dir", str(out), *TINY]
    first = subprocess.Popen(
        [sys.executable, *command], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    metrics = out / "metrics.json"
    deadline = time.time() + 240
    try:  # kill -9 as soon as epoch 1 is logged, i.e. early in epoch 2
        while first.poll() is None and time.time() < deadline:
            if metrics.exists() and json.loads(metrics.read_text()):
                break
            time.sleep(0.05)
    finally:
        first.kill()
        first.communicate()
    assert first.returncode == -9, "the run ended before it could be killed"
    assert not (out / "model.h5").exists() and (out / "backup").exists()

    second = run(command)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resuming from the backup" in second.stdout
    # Epoch 1's row precedes its epoch-end backup, so a kill just after the row may repeat
    # the end of epoch 1 from its mid-epoch backup (exact kill points: the tests below).
    assert "Epoch 3/3" in second.stdout
    assert [row["epoch"] for row in json.loads(metrics.read_text())] == [1, 2, 3]
    check_outputs(out)
    config = json.loads((out / "config.json").read_text())
    assert config["model"] == "el_resnet26" and config["data_source"] == f"idx:{idx_dir}"
    assert (out / "command.txt").read_text().strip().endswith(" ".join(command[1:]))

    model = tf.keras.models.load_model(out / "model.h5")  # plain Keras, after import el_larq
    assert model.output_shape == (None, 10)
    # What convert/to_lce.py does, in-process (a third TF start-up would double the time).
    flatbuffer, _ = convert(load_model(out / "model.h5"))
    assert op_counts(flatbuffer)["LceBconv2d"] > 0
    tflite = out / "model.tflite"
    tflite.write_bytes(flatbuffer)
    evaluated = run([EVALUATE, "--model", str(out / "model.h5"), "--model", str(tflite)]
                    + ["--data_dir", idx_dir, "--json", str(out / "eval.json")])  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    keras, lite = json.loads((out / "eval.json").read_text())
    assert (keras["format"], lite["format"]) == ("keras", "lce")
    assert keras["examples"] == lite["examples"] == 16
    assert abs(keras["top1"] - lite["top1"]) <= 2 / 16  # binary nets: a sign may flip


MOCK_IMAGENET = """
import sys, runpy
import el_larq
import tensorflow_datasets as tfds
sys.argv = sys.argv[1:]
with tfds.testing.mock_data(num_examples=10):
    runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.mark.smoke
def test_imagenet2012_mock_run_with_recipe(tmp_path):
    out = tmp_path / "imagenet"
    args = ["-c", MOCK_IMAGENET, TRAIN, "--recipe", "el_resnet26", "--dataset", "imagenet2012"]
    args += ["--image_size", "32", "--epochs", "1", "--output_dir", str(out), *TINY]
    result = run(args)
    assert result.returncode == 0, result.stderr[-3000:]
    check_outputs(out)
    config = json.loads((out / "config.json").read_text())
    assert config["recipe"] == "el_resnet26" and config["input_shape"] == [32, 32, 3]
    assert config["num_classes"] == 1000 and config["batch_size"] == 8  # flag beats recipe
    assert config["learning_rate"] == 1e-3  # from the recipe
    model = load_model(out / "model.h5")
    flatbuffer, _ = convert(model)
    assert op_counts(flatbuffer)["LceBconv2d"] > 0


def _bad(tmp_path, idx_dir, *args, env=None):
    out = tmp_path / "out"
    base = [TRAIN, "--epochs", "1", "--data_dir", idx_dir, "--nodownload", *TINY]
    if "--output_dir" not in args:
        base += ["--output_dir", str(out)]
    result = run([*base, *args], timeout=120, env={**os.environ, **(env or {})})
    assert result.returncode == 1
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert not list(tmp_path.rglob("model.h5"))
    if "--output_dir" not in args:
        assert not out.exists()  # a failed run leaves no half-made output directory
    return result.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--model", "el_resnet27"], "Unknown model 'el_resnet27'. Valid models: binary_"),
        (["--recipe", "el_resnet27"], "el_resnet26"),
        (["--dataset", "cifar1O"], "unknown dataset 'cifar1O'. Did you mean cifar10"),
        (["--strategy", "mirrored", "--logical_cpus", "2", "--batch_size", "7"], "multiple of"),
        (["--seed", "-1"], "--seed must be in [0, 2**32), got -1."),
        (["--lr_decay_epochs", "half"], "--lr_decay_epochs must be numbers, got 'half'."),
        (["--backup_steps", "-2"], "--backup_steps must be 0"),
        (["--steps_per_epoch", "0"], "--steps_per_epoch must be at least 1, got 0."),
        (["--epochs", "two"], "flag --epochs=two: invalid literal for int()"),  # absl's parser
        (["--width", "inf"], "--width must be a finite number, got inf."),
        (["--batch_norm_momentum", "1"], "--batch_norm_momentum must be in [0, 1), got 1.0."),
        (["--output_dir", ""], "--output_dir must not be empty."),
        (["--recipe", "../zoo/el_resnet26"], "Unknown recipe '../zoo/el_resnet26'. Valid"),
    ],
)
def test_bad_input_exits_with_one_clear_line(tmp_path, idx_dir, args, expected):
    line = _bad(tmp_path, idx_dir, *args)
    assert line.startswith("train.py: error: ") and expected in line


def test_missing_data_says_how_to_get_it(tmp_path):
    line = _bad(tmp_path, str(tmp_path / "nowhere"))
    assert "Fashion-MNIST not found" in line and "apt-get install dataset-fashion-mnist" in line


def test_output_dir_not_writable(tmp_path, idx_dir):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    line = _bad(tmp_path, idx_dir, "--output_dir", str(blocker / "run"))
    assert line.startswith("train.py: error: cannot write to --output_dir")


def test_evaluate_missing_model(tmp_path):
    result = run([EVALUATE, "--model", str(tmp_path / "none.h5")], timeout=120)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].endswith("none.h5 does not exist.")


def test_nan_loss_stops_with_a_clear_message_and_no_model(tmp_path, idx_dir):
    # A learning rate of 1e30 blows the weights up within a few steps.
    line = _bad(
        tmp_path,
        idx_dir,
        "--model",
        "el_resnet18",
        "--learning_rate",
        "1e30",
        "--steps_per_epoch",
        "6",
        "--epochs",
        "2",
    )
    assert line.startswith("train.py: error: ") and "nan" in line.lower()
    assert f"{tmp_path / 'out'} was removed" in line  # the run made it; nothing else in it


# ---------------------------------------------------------------- issue 13: run directories
SMALL = ["--model", "el_resnet18", "--width", "0.125", "--batch_size", "8"]
SMALL += ["--validation_steps", "1", "--verbose", "2", "--epochs", "2"]
KILL = "EL_LARQ_TEST_KILL_AT"  # test hook: the run SIGKILLs itself at that named point
# What a finished el_resnet18 run (no gamma, so no plot) leaves: nothing more, nothing less.
FINAL_FILES = {
    "model.h5", "checkpoints/last.h5", "checkpoints/best.h5", "metrics.csv", "metrics.json",
    "gamma_report.json", "command.txt", "config.json", "logs/train/*", "logs/validation/*",
    "curves.png",
}  # fmt: skip


@pytest.fixture(scope="module")
def idx16(tmp_path_factory):
    return make_idx_dataset(tmp_path_factory.mktemp("fashion16"), train=32, test=8, size=16)


def _files(out: Path) -> set[str]:
    names = set()
    for path in out.rglob("*"):
        if path.is_file():
            name = str(path.relative_to(out))
            tensorboard = name.startswith(("logs/train/", "logs/validation/"))
            names.add(name.rsplit("/", 1)[0] + "/*" if tensorboard else name)
    return names


def _epochs(out: Path) -> list[int]:
    rows = json.loads((out / "metrics.json").read_text()) if (out / "metrics.json").exists() else []
    with open(out / "metrics.csv") if (out / "metrics.csv").exists() else open(os.devnull) as f:
        csv_epochs = [int(line.split(",")[0]) for line in f.read().splitlines()[1:]]
    assert csv_epochs == [row["epoch"] for row in rows]  # the two files agree
    assert all("val_top1" in row and "loss" in row for row in rows)  # validated epochs only
    return [row["epoch"] for row in rows]


def _killed_at(command, point, env=None):
    result = run(command, env={**os.environ, **(env or {}), KILL: point})
    assert result.returncode == -9, f"not killed at {point}: {result.stderr[-2000:]}"
    return result


@pytest.mark.parametrize(
    "extra, kills",
    [
        # Epoch-end backups: records written but no backup yet; right after a backup,
        # before best.h5 is copied (epoch 1 is repeated by this run); model.h5 half-written.
        (["--steps_per_epoch", "3"],
         [("epoch_end:1", [1], False), ("backup:1", [1], True),
          ("final_save", [1, 2], True)]),
        # --backup_steps 2 of 4 steps: right after a mid-epoch backup; after an epoch's
        # last step (before its validation, where Keras would resume in the next epoch);
        # mid-epoch without a backup.
        (["--steps_per_epoch", "4", "--backup_steps", "2"],
         [("step:1.2", [], True), ("step:1.4", [], True), ("step:2.3", [1], True)]),
    ],
    ids=["epoch_backups", "backup_steps"],
)  # fmt: skip
def test_killed_at_any_point_every_epoch_has_one_row_and_the_same_files(
    idx16, tmp_path, extra, kills
):
    out = tmp_path / "run"
    command = [TRAIN, *SMALL, *extra, "--data_dir", idx16, "--output_dir", str(out)]
    for point, rows, backup in kills:
        _killed_at(command, point)
        assert _epochs(out) == rows, point  # never a row the backup does not cover
        assert (out / "backup").is_dir() == backup, point
        assert not (out / "model.h5").exists()
        if point == "final_save":
            assert list(out.glob(".model.h5.*.tmp.h5"))  # killed inside the final save
        if point == "backup:1":
            assert not (out / "checkpoints" / "best.h5").exists()  # the copy comes after
    final = run(command)
    assert final.returncode == 0, final.stderr[-3000:]
    assert "resuming from the backup" in final.stdout
    assert _epochs(out) == [1, 2]
    assert _files(out) == FINAL_FILES  # no backup, temporaries, lock or FAILED left
    assert load_model(out / "model.h5").output_shape == (None, 10)
    # last.h5 holds the last epoch, best.h5 the first epoch with the best val_top1.
    rows = json.loads((out / "metrics.json").read_text())
    best = max(rows, key=lambda row: (row["val_top1"], -row["epoch"]))["epoch"]
    assert _checkpoint_epoch(out, "last.h5") == 2 and _checkpoint_epoch(out, "best.h5") == best


def _checkpoint_epoch(out: Path, name: str) -> int:
    with h5py.File(out / "checkpoints" / name, "r") as f:
        return int(f.attrs["el_larq_epoch"])


def _snapshot(directory: Path) -> dict[str, bytes]:
    # The lock file is not compared: a refused run may take over the killed run's stale one.
    files = [p for p in directory.rglob("*") if p.is_file() and p.name != ".train.lock"]
    return {str(p.relative_to(directory)): p.read_bytes() for p in files}


@pytest.fixture(scope="module")
def interrupted_run(idx16, tmp_path_factory):
    """A run of el_resnet18 killed right after its epoch-1 backup (copy before use)."""
    out = tmp_path_factory.mktemp("interrupted") / "run"
    command = [TRAIN, *SMALL, "--steps_per_epoch", "3", "--data_dir", idx16]
    _killed_at([*command, "--output_dir", str(out)], "backup:1")
    assert _epochs(out) == [1] and (out / "backup").is_dir()
    return command, out


@pytest.mark.parametrize(
    "change, named",
    [
        (["--model", "el_resnet26"], "model: 'el_resnet26' now, 'el_resnet18' recorded"),
        (["--learning_rate", "0.01"], "learning_rate: 0.01 now, 0.001 recorded"),  # same shapes
    ],
)
def test_resuming_with_another_config_is_refused_before_anything_is_rewritten(
    interrupted_run, tmp_path, change, named
):
    command, original = interrupted_run
    out = tmp_path / "run"
    shutil.copytree(original, out)
    before = _snapshot(out)
    result = run([*command, *change, "--output_dir", str(out)], timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith(f"train.py: error: {out} holds another run (") and named in line
    assert "pass --overwrite to replace it" in line and "another --output_dir" in line
    assert _snapshot(out) == before  # config.json, metrics.csv, backup: untouched


def test_overwrite_checks_first_and_removes_only_the_runs_files(interrupted_run, idx16, tmp_path):
    command, original = interrupted_run
    out = tmp_path / "run"
    shutil.copytree(original, out)
    mine = {"notes.txt": b"mine", "model.tflite": b"flatbuffer", "checkpoints/mine.h5": b"w"}
    mine["logs/custom.txt"] = b"not TensorBoard's"
    mine[".notes.txt.tmp"] = b"hidden, but not a temporary of the run"
    for name, content in mine.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(content)
    before = _snapshot(out)
    # Bad data: refused before the directory is touched.
    change = ["--learning_rate", "0.01", "--overwrite", "--output_dir", str(out)]
    bad = run([*command, *change, "--data_dir", str(tmp_path / "nowhere"), "--nodownload"])
    assert bad.returncode == 1 and "Fashion-MNIST not found" in bad.stderr
    assert _snapshot(out) == before
    # Another config with --overwrite: the old run's files go, the user's stay.
    result = run([*command, *change])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "--overwrite: removed the earlier run's" in result.stdout
    assert "resuming" not in result.stdout
    assert {name: (out / name).read_bytes() for name in mine} == mine
    assert _files(out) - set(mine) == FINAL_FILES
    assert _epochs(out) == [1, 2]
    assert json.loads((out / "config.json").read_text())["learning_rate"] == 0.01


def test_one_training_per_directory_and_a_stale_lock_is_taken_over(idx16, tmp_path):
    out = tmp_path / "run"
    command = [TRAIN, *SMALL, "--steps_per_epoch", "3", "--data_dir", idx16]
    command += ["--output_dir", str(out)]
    first = subprocess.Popen(
        [sys.executable, *command], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.time() + 120
        while not (out / "config.json").exists() and first.poll() is None:
            assert time.time() < deadline
            time.sleep(0.02)
        os.kill(first.pid, signal.SIGSTOP)  # holds the lock while the second one starts
        second = run(command, timeout=120)
        assert second.returncode == 1 and "Traceback" not in second.stderr
        line = second.stderr.strip().splitlines()[-1]
        assert line.startswith(f"train.py: error: another training (pid {first.pid} on ")
        assert f"is running in {out}" in line
    finally:
        first.kill()  # kill -9: its lock file stays behind, stale
        first.communicate()
    assert first.returncode == -9 and (out / ".train.lock").exists()
    third = run(command)
    assert third.returncode == 0, third.stderr[-3000:]
    assert f"taking over the lock of pid {first.pid}" in third.stdout
    assert _epochs(out) == [1, 2] and _files(out) == FINAL_FILES


def test_failed_run_in_an_existing_directory_is_marked_and_needs_overwrite(idx_dir, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    nan = ["--model", "el_resnet18", "--learning_rate", "1e30", "--steps_per_epoch", "6"]
    line = _bad(tmp_path, idx_dir, *nan, "--output_dir", str(out))
    assert f"{out} is marked failed (FAILED)" in line and "and --overwrite." in line
    assert "nan" in (out / "FAILED").read_text().lower()
    assert (out / "notes.txt").read_text() == "mine" and not (out / "backup").exists()
    again = _bad(tmp_path, idx_dir, *nan, "--output_dir", str(out))  # refused before the data
    assert again.startswith(f"train.py: error: {out} holds a failed run (FAILED: ")


def test_bad_recipe_file_is_one_line_naming_the_key(tmp_path, idx_dir):
    recipe = json.loads((ROOT / "el_larq" / "recipe_files" / "el_resnet18.json").read_text())
    recipe.setdefault("training", {})["epochs"] = "100"
    (tmp_path / "mine.json").write_text(json.dumps(recipe))
    line = _bad(tmp_path, idx_dir, "--recipe", "mine", env={"EL_LARQ_RECIPES": str(tmp_path)})
    assert line == (
        f"train.py: error: Recipe file {tmp_path / 'mine.json'}: training.epochs must be an "
        'integer, got a string ("100").'
    )


def test_labels_outside_the_classes_are_refused(tmp_path):
    data_dir = make_idx_dataset(tmp_path / "data", train=16, test=8, size=16)
    labels = data.read_idx(f"{data_dir}/train-labels-idx1-ubyte.gz").copy()
    labels[5] = 12
    data.write_idx(f"{data_dir}/train-labels-idx1-ubyte.gz", labels)
    line = _bad(tmp_path, data_dir)
    assert line.startswith("train.py: error: ") and "train-labels-idx1-ubyte.gz: 1 label(s)" in line
    assert "outside the 10 classes 0..9, the first 12 at index 5." in line


def test_evaluate_checks_json_and_class_count_before_evaluating(tmp_path, idx16):
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not a model")
    args = [EVALUATE, "--model", str(junk), "--data_dir", str(tmp_path / "nowhere")]
    missing = run([*args, "--json", str(tmp_path / "no" / "eval.json")], timeout=120)
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert missing.stderr.strip().splitlines()[-1] == (
        f"evaluate.py: error: cannot write {tmp_path / 'no' / 'eval.json'}: "
        f"{tmp_path / 'no'} is not a directory"
    )  # before the model or the data is even looked at
    same = run([*args, "--json", str(junk)], timeout=120)
    assert same.returncode == 1 and "is one of the --model files" in same.stderr
    assert junk.read_bytes() == b"not a model"

    from el_larq import zoo

    model = zoo.get_model("el_resnet18", input_shape=(16, 16, 1), num_classes=7, width=0.125)
    model.save(tmp_path / "seven.h5")
    result = run([EVALUATE, "--model", str(tmp_path / "seven.h5"), "--data_dir", idx16])
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"evaluate.py: error: {tmp_path / 'seven.h5'} predicts 7 classes, but fashion_mnist "
        "split 'test' has 10; evaluate it on the dataset it was trained for."
    )


@pytest.mark.parametrize(
    ("model", "warned"), [("keras:EfficientNetB0", True), ("el_resnet18", False)]
)
def test_a_model_that_rescales_its_input_is_named_in_a_warning(tmp_path, capsys, model, warned):
    # keras-applications' EfficientNet always has Rescaling + Normalization layers.
    from el_larq.training import loop, resolve_config

    config = resolve_config({"output_dir": str(tmp_path)}, model=model)
    loop._build_model(config, (32, 32, 3), 10)
    err = capsys.readouterr().err  # layer names get a suffix after other models were built
    line = re.search(r"warning: keras:EfficientNetB0 rescales its input itself \((.*)\);", err)
    assert bool(line) == warned
    if warned:
        assert [name.rstrip("_0123456789") for name in line[1].split(", ")] == [
            "rescaling", "normalization"
        ]  # fmt: skip


def test_include_preprocessing_is_refused_before_training(tmp_path, idx_dir):
    # The pipeline feeds x / 255 - mean: a model that normalises again would train on
    # near-constant inputs without any error.
    recipe = json.loads((ROOT / "el_larq" / "recipe_files" / "el_resnet18.json").read_text())
    recipe["model_kwargs"]["include_preprocessing"] = True
    (tmp_path / "mine.json").write_text(json.dumps(recipe))
    line = _bad(tmp_path, idx_dir, "--recipe", "mine", env={"EL_LARQ_RECIPES": str(tmp_path)})
    assert line.startswith("train.py: error: include_preprocessing=True would normalise the ")

"""Multi-stage recipes (el_larq.training.stages) with distillation, as real subprocesses."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import tensorflow as tf
from helpers import make_idx_dataset

from el_larq import recipes, training
from el_larq.distillation import check_pairs
from el_larq.training import ConfigError, stage_configs
from el_larq.training.loop import save_model_atomic
from el_larq.zoo import get_model, resnet18

ROOT = Path(__file__).resolve().parents[1]
TRAIN = str(ROOT / "train" / "train.py")
TINY = ["--width", "0.125", "--batch_size", "8", "--steps_per_epoch", "2"]
TINY += ["--validation_steps", "1", "--verbose", "2"]

TWO_STEPS = {
    "name": "two_steps",
    "description": "ReActNet-style: real weights with weight decay, then binary weights",
    "model": "el_resnet18",
    "model_kwargs": {},
    "paper": [],
    "training": {"lr_schedule": "linear", "learning_rate": 0.0005, "epochs": 1},
    "stages": [
        {
            "name": "step1",
            "model_kwargs": {"binary_weights": False},
            "training": {"weight_decay": 1e-5},
            "teacher": "--teacher",
        },
        {
            "name": "step2",
            "init_from": "step1",
            "training": {"weight_decay": 0, "epochs": 2},
            "teacher": "--teacher",
            "distillation": {"label_weight": 0.5},
        },
    ],
}


def _recipes(tmp_path, *recipes):
    directory = tmp_path / "recipes"
    directory.mkdir(exist_ok=True)
    for recipe in recipes:
        (directory / f"{recipe['name']}.json").write_text(json.dumps(recipe))
    return {**os.environ, "EL_LARQ_RECIPES": str(directory)}


def run(args, env, timeout=600):
    return subprocess.run(
        [sys.executable, TRAIN, *args], capture_output=True, text=True, timeout=timeout,
        cwd=ROOT, env=env,
    )  # fmt: skip


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("stages")
    data = make_idx_dataset(base / "fashion", train=32, test=8, size=16)
    teacher = str(base / "teacher.h5")
    save_model_atomic(resnet18(input_shape=(16, 16, 1), num_classes=10, width=0.125), teacher)
    return data, teacher


def test_stage_configs_merge_recipe_stage_and_flags(tmp_path):
    configs = stage_configs(
        {**TWO_STEPS, "training": {**TWO_STEPS["training"], "batch_size": 256}},
        {"output_dir": str(tmp_path), "seed": 3},
        teacher="t.h5",
    )
    first, second = configs
    assert first.output_dir == str(tmp_path / "1_step1")
    assert first.model_kwargs == {"binary_weights": False} and first.weight_decay == 1e-5
    assert first.teacher == "t.h5" and first.init_from is None and first.lr_schedule == "linear"
    assert second.init_from == str(tmp_path / "1_step1" / "model.h5")
    assert second.model_kwargs == {} and second.weight_decay == 0 and second.epochs == 2
    assert second.label_weight == 0.5 and first.label_weight == 0.0
    assert first.seed == second.seed == 3 and second.recipe == "two_steps/step2"


def test_two_stage_run_killed_in_stage_two_resumes_it_and_never_redoes_stage_one(setup, tmp_path):
    data, teacher = setup
    env = _recipes(tmp_path, TWO_STEPS)
    out = tmp_path / "run"
    command = ["--recipe", "two_steps", "--teacher", teacher, "--data_dir", data]
    command += ["--output_dir", str(out), *TINY]
    # Stage 1 has one epoch, so step 1 of epoch 2 only exists in stage 2.
    killed = run(command, {**env, training.loop.KILL_HOOK_ENV: "step:2.1"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    first = out / "1_step1" / "model.h5"
    assert first.exists() and not (out / "2_step2" / "model.h5").exists()
    assert (out / "2_step2" / "backup").exists()
    stamp = first.stat().st_mtime_ns

    resumed = run(command, env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "stage 1/2 1_step1: finished before, skipped" in resumed.stdout
    assert "resuming from the backup" in resumed.stdout
    assert first.stat().st_mtime_ns == stamp
    second = out / "2_step2"
    assert (second / "model.h5").exists() and not (second / "backup").exists()
    rows = json.loads((second / "metrics.json").read_text())
    assert [row["epoch"] for row in rows] == [1, 2]
    assert {"distribution_loss", "label_loss", "val_top1"} <= set(rows[-1])
    config = json.loads((second / "config.json").read_text())
    assert config["init_from"].endswith("1_step1/model.h5") and config["teacher"] == teacher
    summary = json.loads((out / "stages.json").read_text())
    assert [s["stage"] for s in summary] == ["1_step1", "2_step2"]
    stamp2 = (second / "model.h5").stat().st_mtime_ns

    again = run(command, env)
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.count("finished before, skipped") == 2
    assert (second / "model.h5").stat().st_mtime_ns == stamp2
    assert first.stat().st_mtime_ns == stamp


@pytest.mark.parametrize(
    "stages, extra, expected",
    [
        ([{"name": "a", "teacher": "b"}, {"name": "b"}], [], "must name an earlier stage"),
        ([{"name": "a", "init_from": "a"}], [], "must name an earlier stage"),
        ([{"name": "a"}, {"name": "a"}], [], "must be a unique identifier"),
        ([{"name": "a", "distillation": {"attention_pairs": "all"}}], [], '"blocks" or a mapping'),
        ([{"name": "a", "teacher": "--teacher"}], [], "pass --teacher PATH"),
        ([{"name": "a", "teacher": "--teacher"}], ["--teacher", "missing.h5"], "missing.h5"),
        ([{"name": "a", "colour": 1}], [], "unknown key stages[0].'colour'"),
    ],
)
def test_bad_stage_definitions_are_one_line_and_touch_nothing(
    setup, tmp_path, stages, extra, expected
):
    data, _ = setup
    env = _recipes(tmp_path, {**TWO_STEPS, "name": "bad", "stages": stages})
    out = tmp_path / "run"
    result = run(
        ["--recipe", "bad", "--data_dir", data, "--output_dir", str(out), *TINY, *extra], env
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("train.py: error: ") and expected in line, result.stderr[-2000:]
    assert not out.exists()


def test_teacher_that_does_not_fit_is_refused_before_training(setup, tmp_path):
    data, _ = setup
    teacher = tmp_path / "teacher5.h5"
    save_model_atomic(resnet18(input_shape=(16, 16, 1), num_classes=5, width=0.125), str(teacher))
    out = tmp_path / "run"
    command = ["--model", "el_resnet18", "--teacher", str(teacher), "--data_dir", data]
    result = run([*command, "--output_dir", str(out), *TINY], os.environ)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"train.py: error: --teacher {teacher}: the teacher predicts 5 classes, the student 10: "
        "distill from a teacher of the same dataset."
    )
    assert not out.exists()


def test_stage_configs_without_stages_or_teacher_raise_config_error(tmp_path):
    with pytest.raises(ConfigError, match="has no stages"):
        stage_configs({**TWO_STEPS, "stages": []}, {"output_dir": str(tmp_path)})
    with pytest.raises(ConfigError, match="pass --teacher PATH"):
        stage_configs(TWO_STEPS, {"output_dir": str(tmp_path)})


def _attention_stages(name):
    stages = recipes.load_recipe(name).get("stages", [])
    return [s for s in stages if s.get("distillation", {}).get("attention_weight")]


@pytest.mark.parametrize("name", [n for n in recipes.list_recipes() if _attention_stages(n)])
def test_attention_pairs_of_every_stage_recipe_resolve(name, tmp_path):
    # Stages with attention matching share the student's architecture; the first one and
    # its teacher stage are built (small) and their pairs resolved as training would.
    configs = {c.output_dir: c for c in stage_configs(name, {"output_dir": str(tmp_path)})}
    student = next(c for c in configs.values() if c.attention_weight)
    teacher = configs[os.path.dirname(student.teacher)]

    def build(config):
        return get_model(
            config.model, input_shape=(32, 32, 1), num_classes=10, width=0.125,
            **config.model_kwargs,
        )  # fmt: skip

    assert len(check_pairs(build(student), build(teacher), student.attention_pairs)) >= 8


def test_real_to_binary_stages_killed_in_the_last_stage_resume_it(setup, tmp_path):
    # The shipped el_r2b_resnet18 recipe without its binary-activations stage (teacher, soft
    # with attention matching, binary from soft), one epoch per stage, two in the last,
    # killed inside that.
    data, _ = setup
    recipe = recipes.load_recipe("el_r2b_resnet18")
    teacher, soft, _, binary = recipe["stages"]
    binary = {**binary, "init_from": "soft", "teacher": "soft"}
    binary["training"] = {**binary["training"], "epochs": 2}
    recipe["stages"] = [teacher, soft, binary]
    recipe["training"] = {**recipe["training"], "epochs": 1}
    env = _recipes(tmp_path, recipe)
    out = tmp_path / "run"
    command = ["--recipe", "el_r2b_resnet18", "--data_dir", data, "--output_dir", str(out), *TINY]
    killed = run(command, {**env, training.loop.KILL_HOOK_ENV: "step:2.1"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    names = ["1_teacher", "2_soft", "3_binary"]
    done = [(out / name / "model.h5").exists() for name in names]
    assert done == [True, True, False]
    stamps = [(out / name / "model.h5").stat().st_mtime_ns for name in names[:2]]
    resumed = run(command, env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.stdout.count("finished before, skipped") == 2
    assert stamps == [(out / name / "model.h5").stat().st_mtime_ns for name in names[:2]]
    soft = json.loads((out / "2_soft" / "metrics.json").read_text())[-1]
    assert soft["attention_loss"] > 0 and soft["distribution_loss"] > 0
    last = json.loads((out / "3_binary" / "metrics.json").read_text())
    assert [row["epoch"] for row in last] == [1, 2] and "attention_loss" not in last[-1]
    config = json.loads((out / "3_binary" / "config.json").read_text())
    assert config["teacher"].endswith("2_soft/model.h5")
    assert config["init_from"].endswith("2_soft/model.h5")


def test_teacher_with_stored_code_is_refused_before_anything_runs(setup, tmp_path):
    # A Lambda layer stores Python code: a teacher is loaded with the deployment safety rules.
    data, _ = setup
    inputs = tf.keras.Input((16, 16, 1))
    x = tf.keras.layers.Lambda(lambda t: t * 2.0)(inputs)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    teacher = tmp_path / "lambda.h5"
    save_model_atomic(tf.keras.Model(inputs, tf.keras.layers.Dense(10)(x)), str(teacher))
    out = tmp_path / "run"
    command = ["--model", "el_resnet18", "--teacher", str(teacher), "--data_dir", data]
    result = run([*command, "--output_dir", str(out), *TINY], os.environ)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith(f"train.py: error: --teacher: {teacher}") and "Lambda" in line, line
    assert not out.exists()

"""el_larq.feature_maps and `el-larq feature-maps`: the paper's Fig. 1 for any models."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import make_idx_dataset

from el_larq.feature_maps import FeatureMapError, feature_maps, plot_feature_maps
from el_larq.zoo import el_resnet26, resnet26

ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(input_shape=(28, 28, 1), num_classes=10, width=0.125)
IMAGES = np.random.default_rng(0).normal(size=(2, 28, 28, 1)).astype(np.float32)


def test_feature_maps_are_the_layer_output_in_inference_mode():
    model = el_resnet26(**SMALL)
    maps = feature_maps(model, "stage1_block2_out", IMAGES)
    assert maps.shape[:1] == (2,) and maps.ndim == 4 and maps.dtype == np.float32
    expected = model.get_layer("stage1_block2_out").output
    assert maps.shape[1:] == tuple(expected.shape[1:])
    np.testing.assert_array_equal(maps, feature_maps(model, "stage1_block2_out", IMAGES))
    with pytest.raises(FeatureMapError, match="has no layer 'nope'"):
        feature_maps(model, "nope", IMAGES)
    with pytest.raises(FeatureMapError, match="does not output one 4D feature map"):
        feature_maps(model, model.layers[-1].name, IMAGES)


def test_plot_writes_one_png_for_several_models(tmp_path):
    models = {"FP": resnet26(**SMALL), "EL": el_resnet26(**SMALL)}
    path = plot_feature_maps(models, "stage2_block1_out", IMAGES, str(tmp_path / "f.png"), (0, 3))
    assert Path(path).read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(FeatureMapError, match="no channel 999"):
        plot_feature_maps(models, "stage2_block1_out", IMAGES, str(tmp_path / "g.png"), (999,))
    assert not (tmp_path / "g.png").exists()


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "el_larq", "feature-maps", *args],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )  # fmt: skip


def test_cli_draws_saved_models_and_refuses_bad_input_in_one_line(tmp_path):
    data_dir = make_idx_dataset(tmp_path / "data", train=8, test=8)
    paths = []
    for name, builder in (("fp", resnet26), ("el", el_resnet26)):
        os.makedirs(tmp_path / name)
        paths.append(str(tmp_path / name / "model.h5"))
        builder(**SMALL).save(paths[-1])
    models = [flag for path in paths for flag in ("--model", path)]
    common = [*models, "--data_dir", data_dir, "--layer", "stage1_block2_out"]
    result = _cli(*common, "--images", "2", "--output", str(tmp_path / "fig1.png"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "2 models x 2 images, channels [0, 1, 2, 3]" in result.stdout
    assert (tmp_path / "fig1.png").read_bytes()[:4] == b"\x89PNG"
    before = Path(paths[0]).read_bytes()
    for args, message in [
        (["--output", paths[0]], "would overwrite the input " + paths[0] + "; choose another path"),
        (["--output", str(tmp_path / "x.png"), "--layer", "a", "--layer", "b", "--layer", "c"],
         "give one --layer, or one per --model (2)."),
        (["--output", str(tmp_path / "x.png"), "--channels", "0,99"], "no channel 99."),
    ]:  # fmt: skip
        bad = _cli(*common, *args)
        assert bad.returncode == 1 and "Traceback" not in bad.stderr, bad.stderr[-2000:]
        assert bad.stderr.strip().splitlines()[-1].endswith(message)
    assert Path(paths[0]).read_bytes() == before and not (tmp_path / "x.png").exists()

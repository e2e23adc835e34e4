"""``keras-dit train`` / ``sample`` with a discrete-state config (``kind: discrete``): a tiny run end to end,
the ``discrete-digits`` preset, and one-line errors for bad input."""

import os
import re

import keras
import numpy as np
import pytest
import yaml
from PIL import Image

import keras_dit as kd
from keras_dit.cli import main
from keras_dit.cli.config import discrete_presets, is_discrete, presets
from tests.cli.test_config import run_error

TINY = {"kind": "discrete", "data": {"image_size": 8, "S": 4, "batch_size": 16},
        "model": {"patch_size": 4, "hidden_size": 16, "depth": 1, "num_heads": 2, "width": 8},
        "training": {"epochs": 1, "steps_per_epoch": 2, "verbose": 0},
        "sampler": {"num_steps": 2, "num_images_per_class": 1}}


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return str(path)


def test_train_then_sample(config_file, tmp_path, capsys):
    out = str(tmp_path / "run")
    main(["train", "-c", config_file, "--set", f"output_dir={out}", "--set", "sampler.guidance_scale=2.0"])
    model = keras.saving.load_model(os.path.join(out, "model.keras"))
    assert isinstance(model.objective, kd.diffusion.DiscreteCTMC) and model.objective.num_states == 4
    assert isinstance(model.backbone, kd.models.CategoricalBackbone)
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 2  # steps_per_epoch
    with open(os.path.join(out, "config.yaml")) as f:
        saved = yaml.safe_load(f)
    assert saved["sampler"]["guidance_scale"] == 2.0 and saved["model"]["depth"] == 1 and saved["kind"] == "discrete"
    assert os.path.isfile(os.path.join(out, "log.csv"))

    main(["sample", "-c", config_file, "--set", f"output_dir={out}"])
    samples = os.path.join(out, "samples")
    with np.load(os.path.join(samples, "samples.npz")) as npz:
        images, labels, names = npz["images"], npz["labels"], npz["class_names"]
    assert images.dtype == np.uint8 and images.shape == (10, 8, 8, 1)
    assert labels.tolist() == list(range(10)) and names[3] == "three"
    assert set(np.unique(images)) <= {0, 85, 170, 255}  # S = 4 levels
    files = sorted(os.listdir(os.path.join(samples, "images")))
    assert len(files) == 10 and files[3] == "00003_three.png"
    assert Image.open(os.path.join(samples, "grid.png")).mode == "RGB"
    assert "recognised as their class" in capsys.readouterr().out

    assert "already exists" in run_error(capsys, ["train", "-c", config_file, "--set", f"output_dir={out}"])


def test_discrete_preset_is_recognised(capsys):
    assert "discrete-digits" in discrete_presets() and "discrete-digits" not in presets()
    assert is_discrete("discrete-digits") and not is_discrete("digits")
    main(["sample", "-c", "discrete-digits", "--set", "data.S=8", "--set", "training.learning_rate=2e-4",
          "--print-config"])
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["kind"] == "discrete" and printed["data"]["S"] == 8
    assert printed["training"]["learning_rate"] == pytest.approx(2e-4)


@pytest.mark.parametrize(
    "argv,match",
    [(["--set", "sampler.num_step=3"], "unknown discrete config key 'sampler.num_step'.*did you mean "
                                       "'sampler.num_steps'"),
     (["--set", "training.depth=3"], "did you mean 'model.depth'"),
     (["--set", "data.S=four"], "data.S .*must be an integer, got 'four'"),
     (["--set", "model.fix_logistic=1"], "must be true or false"),
     (["--set", "output_dir"], "--set takes key=value")],
)
def test_bad_keys_and_values(capsys, argv, match):
    assert re.search(match, run_error(capsys, ["train", "-c", "discrete-digits", *argv]), re.IGNORECASE)


def test_bad_commands(capsys, tmp_path):
    assert "train and sample take it" in run_error(capsys, ["evaluate", "-c", "discrete-digits"])
    assert "--resume" in run_error(capsys, ["train", "--resume", "-c", "discrete-digits"])
    assert "discrete-digits" in run_error(capsys, ["train", "-c", "discrete-digts"])  # the presets are listed
    missing = run_error(capsys, ["sample", "-c", "discrete-digits", "--set", f"output_dir={tmp_path}/none"])
    assert "model.keras' does not exist" in missing

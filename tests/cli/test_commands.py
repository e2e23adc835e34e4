"""``keras-dit`` end to end on a tiny config (train, interrupt, resume, sample, evaluate) and its bad input."""

import csv
import os
import shutil
import subprocess

import keras
import numpy as np
import pytest
from PIL import Image

import keras_dit as kd
from keras_dit.cli import main
from keras_dit.training_callbacks import SampleGrid
from tests.helpers import TINY_CLI as TINY
from tests.helpers import run_error
from tests.helpers import tiny_cli as tiny

def log_epochs(out):
    with open(os.path.join(out, "log.csv"), newline="") as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run interrupted by Ctrl-C after epoch 2 of 3, then resumed with --resume."""
    out = str(tmp_path_factory.mktemp("cli") / "run")
    real = SampleGrid.on_epoch_end

    def interrupt_at_epoch_2(self, epoch, logs=None):
        real(self, epoch, logs)
        if epoch == 1:
            raise KeyboardInterrupt

    SampleGrid.on_epoch_end = interrupt_at_epoch_2
    try:
        with pytest.raises(SystemExit) as exit_info:
            main(["train", *tiny(out, "--set", "train.epochs=3")])
    finally:
        SampleGrid.on_epoch_end = real
    assert exit_info.value.code == 130
    assert log_epochs(out) == [0, 1]
    main(["train", "--resume", *tiny(out, "--set", "train.epochs=3")])
    return out


def test_train_interrupt_and_resume(run_dir):
    assert log_epochs(run_dir) == [0, 1, 2]  # the resumed run did epoch 3 only
    model = keras.saving.load_model(os.path.join(run_dir, "model.keras"))
    assert isinstance(model, kd.tasks.DiffusionModel)
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 3 * 2  # 64 images / batch 32
    for name in ("config.yaml", "loss.png", "grids/epoch_001.png", "grids/epoch_003.png"):
        assert os.path.isfile(os.path.join(run_dir, name)), name
    assert not os.path.exists(os.path.join(run_dir, "condition.json"))  # the model carries the class names
    assert Image.open(os.path.join(run_dir, "loss.png")).size == (640, 400)


def test_sample_and_evaluate(run_dir, capsys):
    main(["sample", *tiny(run_dir)])
    out = os.path.join(run_dir, "samples")
    with np.load(os.path.join(out, "samples.npz")) as npz:
        images, labels, names = npz["images"], npz["labels"], npz["class_names"]
    assert images.dtype == np.uint8 and images.shape == (10, 8, 8, 1)
    assert labels.tolist() == list(range(10)) and names[3] == "three"
    assert len(os.listdir(os.path.join(out, "images"))) == 10 and "00003_three.png" in os.listdir(
        os.path.join(out, "images"))
    assert Image.open(os.path.join(out, "grid.png")).mode == "RGB"
    main(["evaluate", *tiny(run_dir)])
    assert "recognised as their class" in capsys.readouterr().out
    report = open(os.path.join(out, "evaluation.json")).read()
    assert '"accuracy"' in report and '"frechet_distance"' in report


def test_sample_guidance_interval(run_dir, tmp_path):
    """sample.guidance_interval reaches generate: [0, 1] guides every step (as null does), [0, 0] none."""
    images = {}
    for interval in ("null", "[0, 1]", "[0, 0]"):
        out = tmp_path / interval.strip("[]").replace(", ", "-")
        main(["sample", *tiny(run_dir, "--set", f"sample.output={out}", "--set", "sample.guidance_scale=4",
                              "--set", f"sample.guidance_interval={interval}")])
        with np.load(out / "samples.npz") as npz:
            images[interval] = npz["images"].astype(int)
    assert np.array_equal(images["null"], images["[0, 1]"])
    assert np.abs(images["null"] - images["[0, 0]"]).max() > 0


def test_sample_by_name_from_the_model_file_alone(run_dir, tmp_path, capsys):
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(os.path.join(run_dir, "model.keras"), alone / "model.keras")
    main(["sample", *tiny(alone, "--set", "sample.labels=[seven, 3]")])
    with np.load(alone / "samples" / "samples.npz") as npz:
        assert npz["labels"].tolist() == [7, 3] and npz["class_names"][7] == "seven"
    assert sorted(os.listdir(alone / "samples" / "images")) == ["00000_seven.png", "00001_three.png"]
    line = run_error(capsys, ["sample", *tiny(alone, "--set", "sample.labels=[sevn]")])
    assert "sample.labels=['sevn']: Unknown class label 'sevn'" in line and "seven" in line


def test_run_dir_from_before_models_carried_names_samples_by_number(tmp_path, capsys):
    """A run written before the conditioner held the class names (names in a condition.json beside the model,
    which nothing reads now): it samples by label number, captioned by number; a name is a clear error."""
    old = tmp_path / "old"
    old.mkdir()
    legacy = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data_files", "dit_labels_6d0f089.keras")
    shutil.copy(legacy, old / "model.keras")
    (old / "condition.json").write_text('{"kind": "labels", "names": ["cat", "dog", "owl"]}')
    main(["sample", "--set", f"output_dir={old}", "--set", "sample.num_steps=2", "--set", "sample.per_class=2"])
    with np.load(old / "samples" / "samples.npz") as npz:
        assert npz["images"].shape == (6, 4, 4, 1) and npz["labels"].tolist() == [0, 0, 1, 1, 2, 2]
        assert npz["class_names"].tolist() == ["0", "1", "2"]
    line = run_error(capsys, ["sample", "--set", f"output_dir={old}", "--set", "sample.labels=[owl]"])
    assert "Unknown class label 'owl'" in line and "no label names" in line


def test_rerun_and_resume_mistakes(run_dir, capsys):
    line = run_error(capsys, ["train", *tiny(run_dir)])
    assert "already exists: pass --resume" in line
    line = run_error(capsys, ["train", "--resume", *tiny(run_dir, "--set", "model.depth=2")])
    assert "is from another model" in line and "parameters" in line
    line = run_error(capsys, ["train", "--resume", *tiny(os.path.join(run_dir, "elsewhere"))])
    assert "no checkpoint" in line


def test_checkpoint_from_another_model(tmp_path, capsys):
    other = tmp_path / "other.keras"
    keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]).save(other)
    line = run_error(capsys, ["sample", "--set", f"sample.checkpoint={other}"])
    assert "holds a Sequential, not a DiffusionModel" in line
    garbage = tmp_path / "garbage.keras"
    garbage.write_bytes(b"not a zip file")
    assert "cannot load checkpoint" in run_error(capsys, ["sample", "--set", f"sample.checkpoint={garbage}"])
    line = run_error(capsys, ["sample", "--set", f"sample.checkpoint={tmp_path}/missing.keras"])
    assert "does not exist" in line


def test_data_folder_missing_or_empty(tmp_path, capsys):
    line = run_error(capsys, ["train", "--set", f"output_dir={tmp_path}/run", "--set", f"data.source={tmp_path}/nope"])
    assert "nope" in line and "neither a built-in data set" in line
    (tmp_path / "empty").mkdir()
    line = run_error(capsys, ["train", "--set", f"output_dir={tmp_path}/run", "--set", f"data.source={tmp_path}/empty"])
    assert "holds no images" in line


def test_corrupt_image_is_skipped_with_a_warning(tmp_path):
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (tmp_path / "images" / cls).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).save(tmp_path / "images" / cls / f"{i}.png")
    (tmp_path / "images" / "a" / "broken.png").write_bytes(b"\x89PNG not really")
    argv = ["train", "--set", f"output_dir={tmp_path}/run", "--set", f"data.source={tmp_path}/images",
            "--set", "data.batch_size=9", "--set", "train.epochs=1", *TINY[6:]]
    with pytest.warns(UserWarning, match="broken.png"):
        main(argv)
    assert os.path.isfile(tmp_path / "run" / "model.keras")
    assert log_epochs(tmp_path / "run") == [0]


@pytest.mark.skipif(shutil.which("keras-dit") is None, reason="the package is not installed (pip install -e .)")
def test_installed_entry_point(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))}
    result = subprocess.run([shutil.which("keras-dit"), "train", "--config", str(tmp_path / "missing.yaml")],
                            capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("keras-dit: error: config file")
    assert "Traceback" not in result.stderr

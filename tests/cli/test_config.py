"""``keras-dit`` config handling: presets, --set typing, and the one-line errors of bad configs."""

import pytest

from keras_dit.cli import main
from keras_dit.cli.config import SCHEMA, load_config, presets
from tests.helpers import run_error


def test_presets_are_valid_configs():
    assert {"digits", "folder", "latent", "convert"} <= set(presets())
    for name in presets():
        config = load_config(name)
        assert set(config) == set(SCHEMA)


def test_set_overrides_are_parsed_as_yaml():
    config = load_config("digits", ["train.epochs=3", "train.learning_rate=2e-4", "train.ema=false",
                                    "sample.labels=[1, seven]", "model.preset=null", "output_dir=out"])
    assert config["train.epochs"] == 3 and isinstance(config["train.epochs"], int)
    assert config["train.learning_rate"] == pytest.approx(2e-4)
    assert config["train.ema"] is False
    assert config["sample.labels"] == [1, "seven"]
    assert config["model.preset"] is None and config["output_dir"] == "out"
    assert config["data.image_size"] == 16  # from the preset


def test_print_config_does_no_work(capsys, tmp_path):
    main(["train", "-c", "digits", "--set", f"output_dir={tmp_path}/run", "--print-config"])
    out = capsys.readouterr().out
    assert f"output_dir: {tmp_path}/run" in out and "depth: 4" in out
    assert not (tmp_path / "run").exists()


def test_missing_config_file(capsys):
    line = run_error(capsys, ["train", "--config", "no_such_config.yaml"])
    assert "'no_such_config.yaml' does not exist" in line and "digits" in line


def test_unknown_key_names_the_closest(capsys, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  depht: 4\n")
    line = run_error(capsys, ["train", "-c", str(path)])
    assert "'model.depht'" in line and "did you mean 'model.depth'" in line
    line = run_error(capsys, ["train", "--set", "train.depth=2"])  # the right key in the wrong section
    assert "'train.depth'" in line and "'model.depth'" in line


def test_wrong_type_says_what_was_expected(capsys, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  epochs: four\n")
    line = run_error(capsys, ["train", "-c", str(path)])
    assert "train.epochs" in line and "must be an integer" in line and "'four'" in line
    line = run_error(capsys, ["train", "--set", "train.ema=3"])
    assert "train.ema" in line and "true or false" in line
    line = run_error(capsys, ["train", "--set", "objective.kind=diffusion"])
    assert "must be one of ['rectified_flow', 'gaussian', 'discrete']" in line
    for interval in ("[0.5, 0.2]", "[0, 2]", "0.3", "[low, high]"):
        line = run_error(capsys, ["train", "--set", f"sample.guidance_interval={interval}"])
        assert "sample.guidance_interval" in line and "[lo, hi] with 0 <= lo <= hi <= 1" in line


def test_malformed_yaml_and_set(capsys, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model: [unclosed\n")
    assert "not valid YAML" in run_error(capsys, ["train", "-c", str(path)])
    path.write_text("- a list\n")
    assert "must hold a mapping" in run_error(capsys, ["train", "-c", str(path)])
    assert "--set takes key=value" in run_error(capsys, ["train", "--set", "train.epochs"])


def test_help_explains_every_key(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for key in SCHEMA:
        if key.split(".")[0] in ("data", "model", "objective", "discrete", "train", "sample"):
            assert key in out
    assert "--resume" in out and "tensorboard" in out

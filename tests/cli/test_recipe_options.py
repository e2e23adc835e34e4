"""The modern-recipe config keys (model.norm_type / mlp_type / qk_norm / rope, objective.direction_*, repa.*) reach
the built model, and ``demo`` reports accuracy and Frechet distance next to the real digits' own floor."""

import os

import keras
import numpy as np

from keras_dit.cli import builders, commands, main
from keras_dit.cli.config import load_config
from keras_dit.losses import REPA
from tests.helpers import tiny_cli as tiny


def test_config_keys_build_the_options(tmp_path):
    images = keras.Input((8, 8, 1))
    features = keras.layers.Reshape((-1, 3))(keras.layers.Conv2D(3, 4, strides=4)(images))
    encoder_path = str(tmp_path / "encoder.keras")
    keras.Model(images, features).save(encoder_path)
    overrides = ["data.limit=32", "data.batch_size=16", "data.image_size=8", "model.patch_size=2",
                 "model.hidden_size=16", "model.depth=2", "model.num_heads=2", "model.norm_type=rms",
                 "model.mlp_type=swiglu", "model.qk_norm=true", "model.rope=true", "objective.direction_weight=0.5",
                 "objective.direction_axes=sample",
                 f"repa.encoder={encoder_path}", "repa.block=0", "repa.projector_hidden_size=8"]
    config = load_config("digits", overrides)
    model = builders.build_model(config, builders.build_data(config))
    backbone = model.backbone.get_config()
    assert (backbone["norm_type"], backbone["mlp_type"], backbone["qk_norm"], backbone["rope"]) == (
        "rms", "swiglu", True, True)
    assert model.objective.direction_weight == 0.5 and model.objective.direction_axes == "sample"
    assert isinstance(model.repa, REPA) and model.repa.block == 0 and model.repa.projector_hidden_size == 8
    plain = load_config("digits", [*overrides[:7], "model.norm_type=layer", "model.mlp_type=gelu",
                                   "model.qk_norm=false", "model.rope=false"])
    assert builders.build_model(plain, builders.build_data(plain)).repa is None


def test_real_digits_floor_falls_with_the_sample_size():
    labels = np.repeat(np.arange(10), 10)
    small = commands.real_digits_frechet_distance(labels, 16, draws=3)
    large = commands.real_digits_frechet_distance(np.repeat(np.arange(10), 50), 16, draws=3)
    assert 0 < large < small


def test_demo_reports_accuracy_and_frechet_distance_against_the_floor(tmp_path, capsys):
    out = tmp_path / "demo"
    main(["demo", *tiny(out, "--set", "train.epochs=1", "--set", "sample.per_class=3", "--set",
                        "train.sample_every=0")])
    report = open(os.path.join(out, "report.txt")).read()
    assert "samples recognised as their class:" in report and "of 30" in report
    assert "30 real digits of the same classes score" in report and "x that floor" in report
    assert report in capsys.readouterr().out

"""``keras-dit demo -c latent-alphabet``: a model conditioned on the 27 Alphabet parameters, scored on held-out
parameter vectors against their true renders and against the same model with the null condition."""

import json
import os

import numpy as np
import pytest

from keras_dit.cli.main import run

# The preset's whole latent pipeline made small: 16 px renders, the kl-f2-rgb VAE (8 x 8 x 4 latents) for 6 epochs,
# a per-channel shift and scale, a latent cache, and a small DiT on 2 x 2 latent patches (16 tokens) for 15 epochs
# (77 s on 2 idle cores with JAX: 19.0 vs 9.7 dB, backgrounds 85% vs 0%).
def small(out):
    return {
        "data.image_size": 16, "data.limit": 512, "data.batch_size": 32, "data.latent_cache": f"{out}/latents.npz",
        "vae.checkpoint": f"{out}/vae.keras", "vae.cache": f"{out}/latents.npz", "vae.epochs": 6,
        "model.autoencoder": f"{out}/vae.keras", "model.patch_size": 2, "model.hidden_size": 64, "model.depth": 2,
        "model.num_heads": 2, "train.epochs": 15, "train.learning_rate": 2e-3, "train.verbose": 0,
        "train.tensorboard": False, "train.sample_every": 0, "sample.num_images": 40, "sample.num_steps": 10,
    }


def demo_argv(out, sets):
    return ["demo", "-c", "latent-alphabet", *[a for k, v in {"output_dir": out, **sets}.items()
                                                 for a in ("--set", f"{k}={v}")]]


@pytest.mark.large  # trains a small KL-VAE, then a DiT on its latents
def test_conditioned_latent_model_beats_its_null_condition_baseline(tmp_path, capsys):
    out = str(tmp_path / "demo")
    scores = run(demo_argv(out, small(out)))
    assert scores["num_images"] == 40 and scores["training_vectors"] == 0.0  # held-out vectors
    assert scores["psnr_margin"] >= 3.0, scores
    assert scores["background_accuracy"] >= 0.5 and scores["baseline_background_accuracy"] <= 0.15, scores
    report = open(os.path.join(out, "report.txt")).read()
    assert "dB conditioned" in report and "baseline" in report and report in capsys.readouterr().out
    for name in ("grid.png", "baseline.png", "samples.npz", "evaluation.json"):
        assert os.path.isfile(os.path.join(out, "samples", name))
    again = run(["evaluate", "-c", "latent-alphabet", "--set", f"output_dir={out}"])["alphabet"]  # from the file
    assert again["psnr"] == pytest.approx(scores["psnr"])
    assert again["baseline_psnr"] == pytest.approx(scores["baseline_psnr"], abs=0.5)
    with open(os.path.join(out, "samples", "evaluation.json")) as f:
        assert json.load(f)["alphabet"]["num_images"] == 40
    assert np.load(os.path.join(out, "samples", "samples.npz"))["images"].shape == (40, 16, 16, 3)  # decoded


def test_evaluate_needs_the_samples_parameter_vectors(tmp_path):
    folder = tmp_path / "samples"
    folder.mkdir()
    np.savez(folder / "samples.npz", images=np.zeros((2, 16, 16, 3), np.uint8), labels=np.zeros(2))
    with pytest.raises(ValueError, match="no parameter vectors"):
        run(["evaluate", "-c", "latent-alphabet", "--set", f"output_dir={tmp_path}"])

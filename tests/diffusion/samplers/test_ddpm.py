"""DDPM: trajectory parity with diffusers' DDPMScheduler (same model function, same noise), seeds, options."""

import functools

import numpy as np
import pytest

import keras_dit as kd
from tests.diffusion.samplers.parity import (
    InjectedNoise, assert_parity, diffusers_sample, gaussian_model, initial_noise, patched_ddpm_noise, share_tables,
    step_noises,
)
from tests.helpers import assert_close, max_abs_diff

diffusers = pytest.importorskip("diffusers")

PREDICTION_TYPES = {"eps": "epsilon", "v": "v_prediction", "x0": "sample"}
VARIANCE_TYPES = {"small": "fixed_small", "large": "fixed_large", "learned": "learned_range"}


class NoisyDDPM(InjectedNoise, kd.samplers.DDPM):
    pass


def assert_matches_diffusers(monkeypatch, num_steps, spacing, prediction="eps", variance="small",
                             schedule="linear", clip=None):
    learn_sigma = variance == "learned"
    objective = kd.diffusion.GaussianDiffusion(schedule, prediction, learn_sigma=learn_sigma)
    model_fn = gaussian_model(objective)
    noise = initial_noise()
    noises = step_noises(num_steps - 1) + [np.zeros_like(noise)]
    ours = NoisyDDPM(noises, variance=variance, timestep_spacing=spacing, clip_x0=clip).sample(
        model_fn, noise, num_steps, objective
    )
    scheduler = share_tables(diffusers.DDPMScheduler(
        beta_schedule={"cosine": "squaredcos_cap_v2"}.get(schedule, schedule),
        **({"beta_start": 0.00085, "beta_end": 0.012} if schedule == "scaled_linear" else {}),
        prediction_type=PREDICTION_TYPES[prediction], variance_type=VARIANCE_TYPES[variance],
        timestep_spacing=spacing, clip_sample=clip is not None, clip_sample_range=clip or 1.0,
    ), objective)
    # Zeros for the last step: diffusers adds noise there when t > 0, ours returns the mean (see parity.py).
    patched_ddpm_noise(monkeypatch, noises)
    scheduler.set_timesteps(num_steps)
    theirs = diffusers_sample(scheduler, model_fn, noise)
    assert_parity("DDPM", ours, theirs)


@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
@pytest.mark.parametrize("num_steps", [3, 10, 30])
def test_parity_spacings(monkeypatch, spacing, num_steps):
    assert_matches_diffusers(monkeypatch, num_steps, spacing)


@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
@pytest.mark.parametrize("prediction", ["v", "x0"])
def test_parity_single_step(monkeypatch, spacing, prediction):
    # One eps-prediction step from t = 999 returns x0 = (x - sqrt(1 - a) eps) / sqrt(a): float32 rounding of x
    # (2e-7 at |x| ~ 3) times 1 / sqrt(a) = 156 is ~3e-5 in any float32 implementation, so this edge case is
    # checked with the well-conditioned predictions.
    assert_matches_diffusers(monkeypatch, 1, spacing, prediction)


@pytest.mark.parametrize("prediction", ["eps", "v", "x0"])
@pytest.mark.parametrize("variance", ["small", "large", "learned"])
def test_parity_predictions_and_variances(monkeypatch, prediction, variance):
    assert_matches_diffusers(monkeypatch, 20, "trailing", prediction, variance)


@pytest.mark.parametrize("schedule", ["scaled_linear", "cosine"])
def test_parity_schedules_and_clipping(monkeypatch, schedule):
    assert_matches_diffusers(monkeypatch, 10, "leading", "x0", "learned", schedule, clip=1.0)


@pytest.mark.large
def test_parity_all_steps(monkeypatch):
    assert_matches_diffusers(monkeypatch, 1000, "leading")


def test_seed_reproduces_and_varies():
    objective = kd.diffusion.GaussianDiffusion()
    sampler = kd.samplers.DDPM()
    run = functools.partial(sampler.sample, gaussian_model(objective), initial_noise(), 5, objective)
    assert_close(run(seed=3), run(seed=3), atol=0.0, what="same seed")
    assert max_abs_diff(run(seed=3), run(seed=4)) > 1e-2, "different seeds gave the same sample"


def test_learned_variance_needs_learn_sigma():
    with pytest.raises(ValueError, match="learn_sigma=True"):
        objective = kd.diffusion.GaussianDiffusion()
        kd.samplers.DDPM(variance="learned").sample(gaussian_model(objective), initial_noise(), 3, objective)


def test_bad_variance_name():
    with pytest.raises(ValueError, match="Unknown DDPM variance 'fixed'.*'small', 'large', 'learned'"):
        kd.samplers.DDPM(variance="fixed")

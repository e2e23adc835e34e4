"""DDIM: trajectory parity with diffusers' DDIMScheduler (deterministic and with eta > 0), and with DDPM at eta = 1."""

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


class NoisyDDIM(InjectedNoise, kd.samplers.DDIM):
    pass


def assert_matches_diffusers(num_steps, spacing, prediction="eps", eta=0.0, schedule="linear", clip=None,
                             learn_sigma=False, **options):
    objective = kd.diffusion.GaussianDiffusion(schedule, prediction, learn_sigma=learn_sigma)
    model_fn = gaussian_model(objective)
    noise = initial_noise()
    noises = step_noises(num_steps - 1) + [np.zeros_like(noise)] if eta > 0 else []
    ours = NoisyDDIM(noises, eta=eta, timestep_spacing=spacing, clip_x0=clip, **options).sample(
        model_fn, noise, num_steps, objective
    )
    scheduler = share_tables(diffusers.DDIMScheduler(
        beta_schedule={"cosine": "squaredcos_cap_v2"}.get(schedule, schedule),
        **({"beta_start": 0.00085, "beta_end": 0.012} if schedule == "scaled_linear" else {}),
        prediction_type=PREDICTION_TYPES[prediction], timestep_spacing=spacing,
        clip_sample=clip is not None, clip_sample_range=clip or 1.0,
        set_alpha_to_one=options.get("set_alpha_to_one", True),
    ), objective)
    # The DDIM scheduler takes the model's mean channels only; its last step adds sigma = 0 times the noise.
    channels = noise.shape[-1]
    scheduler.set_timesteps(num_steps)
    theirs = diffusers_sample(
        scheduler, lambda x, t: model_fn(x, t)[..., :channels], noise,
        noises=noises,
        step_kwargs={"eta": eta, "use_clipped_model_output": True},
    )
    assert_parity("DDIM", ours, theirs)


# diffusers' DDIMScheduler steps back T // n timesteps from each spaced timestep; that is the next spaced
# timestep (as ours) for "leading", and for "trailing" when n divides T. "linspace" is checked at eta = 1 below.
@pytest.mark.parametrize("spacing", ["leading", "trailing"])
@pytest.mark.parametrize("num_steps", [1, 8, 40])
def test_parity_spacings(spacing, num_steps):
    # v at one step: see test_ddpm's single step
    assert_matches_diffusers(num_steps, spacing, prediction="v" if num_steps == 1 else "eps")


@pytest.mark.parametrize("spacing,num_steps", [("trailing", 37), ("linspace", 37), ("linspace", 7), ("leading", 13),
                                               ("trailing", 40)])
@pytest.mark.parametrize("set_alpha_to_one", [True, False])
def test_parity_diffusers_step_rule(spacing, num_steps, set_alpha_to_one):
    """step_rule="stride" is diffusers' ``t - T // n``: parity for every spacing and step count."""
    assert_matches_diffusers(num_steps, spacing, "v", eta=0.5, step_rule="stride", set_alpha_to_one=set_alpha_to_one)


def test_final_alpha_and_step_rule_change_the_result():
    objective = kd.diffusion.GaussianDiffusion()
    model_fn, noise = gaussian_model(objective), initial_noise()
    sample = lambda **options: kd.samplers.DDIM(timestep_spacing="linspace", **options).sample(  # noqa: E731
        model_fn, noise, 37, objective)
    assert max_abs_diff(sample(), sample(set_alpha_to_one=False)) > 1e-3
    assert max_abs_diff(sample(), sample(step_rule="stride")) > 1e-2


@pytest.mark.parametrize("prediction", ["eps", "v", "x0"])
@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_parity_predictions_and_eta(prediction, eta):
    assert_matches_diffusers(20, "trailing", prediction, eta)


@pytest.mark.parametrize("schedule", ["scaled_linear", "cosine"])
def test_parity_schedules_clipping_learned_sigma(schedule):
    assert_matches_diffusers(10, "leading", "eps", 0.3, schedule, clip=1.0, learn_sigma=True)


@pytest.mark.parametrize("spacing,num_steps", [("linspace", 7), ("linspace", 50), ("trailing", 7), ("leading", 13)])
def test_parity_eta_one_is_ddpm(monkeypatch, spacing, num_steps):
    """At eta = 1, DDIM is DDPM with the small variance: compare with diffusers' DDPMScheduler on any grid."""
    objective = kd.diffusion.GaussianDiffusion()
    model_fn = gaussian_model(objective)
    noise = initial_noise()
    noises = step_noises(num_steps - 1) + [np.zeros_like(noise)]
    ours = NoisyDDIM(noises, eta=1.0, timestep_spacing=spacing).sample(model_fn, noise, num_steps, objective)
    scheduler = share_tables(diffusers.DDPMScheduler(timestep_spacing=spacing, clip_sample=False), objective)
    patched_ddpm_noise(monkeypatch, noises)
    scheduler.set_timesteps(num_steps)
    assert_parity("DDIM", ours, diffusers_sample(scheduler, model_fn, noise))


def test_eta_zero_is_deterministic_and_eta_uses_seed():
    objective = kd.diffusion.GaussianDiffusion()
    model_fn, noise = gaussian_model(objective), initial_noise()
    deterministic = functools.partial(kd.samplers.DDIM().sample, model_fn, noise, 6, objective)
    assert_close(deterministic(seed=1), deterministic(seed=2), atol=0.0, what="eta=0 with different seeds")
    noisy = functools.partial(kd.samplers.DDIM(eta=1.0).sample, model_fn, noise, 6, objective)
    assert_close(noisy(seed=1), noisy(seed=1), atol=0.0, what="eta=1 with the same seed")
    assert max_abs_diff(noisy(seed=1), noisy(seed=2)) > 1e-2, "eta=1 ignored the seed"


def test_bad_options():
    with pytest.raises(ValueError, match="eta must be a number >= 0"):
        kd.samplers.DDIM(eta=-0.1)
    with pytest.raises(ValueError, match="Unknown DDIM step_rule 'strides'. Did you mean 'stride'"):
        kd.samplers.DDIM(step_rule="strides")
    with pytest.raises(ValueError, match="set_alpha_to_one must be True or False, got 0"):
        kd.samplers.DDIM(set_alpha_to_one=0)

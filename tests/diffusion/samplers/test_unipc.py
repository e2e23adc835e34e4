"""UniPC: parity with diffusers' UniPCMultistepScheduler (Gaussian and flow, orders, spacings), and checks."""

import numpy as np
import pytest

import keras_dit as kd
from tests.diffusion.samplers.parity import assert_multistep_parity, initial_noise, ten_step_errors

diffusers = pytest.importorskip("diffusers")


def assert_matches_diffusers(objective, num_steps, order=2, spacing="linspace"):
    sampler = kd.samplers.UniPC(order=order, timestep_spacing=spacing)
    assert_multistep_parity("UniPC", sampler, diffusers.UniPCMultistepScheduler, objective, num_steps,
                            solver_order=order, timestep_spacing=spacing)


@pytest.mark.parametrize("spacing,num_steps", [("linspace", 5), ("linspace", 37), ("leading", 10), ("trailing", 20),
                                               ("trailing", 2)])
def test_parity_spacings(spacing, num_steps):
    assert_matches_diffusers(kd.diffusion.GaussianDiffusion(), num_steps, spacing=spacing)


@pytest.mark.parametrize("prediction", ["eps", "v", "x0"])
@pytest.mark.parametrize("order", [1, 2, 3])
def test_parity_predictions_and_orders(prediction, order):
    assert_matches_diffusers(kd.diffusion.GaussianDiffusion(prediction=prediction), 12, order, "trailing")


@pytest.mark.parametrize("schedule", ["scaled_linear", "cosine"])
def test_parity_schedules(schedule):
    assert_matches_diffusers(kd.diffusion.GaussianDiffusion(schedule, "v"), 20, order=3, spacing="leading")


@pytest.mark.parametrize("shift", [1.0, 3.0])
@pytest.mark.parametrize("order,num_steps", [(2, 5), (2, 25), (3, 9)])
def test_parity_flow(shift, order, num_steps):
    assert_matches_diffusers(kd.diffusion.RectifiedFlow(shift=shift), num_steps, order=order)


def test_parity_flow_uniform_grid():
    # keras_dit's grid, given to diffusers unshifted as custom sigmas; both start at 1 - 1e-6 instead of 1.
    import torch

    objective = kd.diffusion.RectifiedFlow(shift=2.0)
    sampler = kd.samplers.UniPC(time_grid="uniform")
    scheduler = diffusers.UniPCMultistepScheduler(use_flow_sigmas=True, prediction_type="flow_prediction",
                                                  flow_shift=2.0)
    scheduler.set_timesteps(sigmas=np.linspace(1.0, 0.0, 11)[:-1])
    assert_multistep_parity("UniPC", sampler, diffusers.UniPCMultistepScheduler, objective, 10,
                            sigmas=torch.as_tensor(scheduler.sigmas[:-1]).double().numpy())


def test_ten_steps_beat_euler():
    errors = ten_step_errors(kd.samplers.UniPC())
    assert errors[0] < errors[1] / 5, f"UniPC error {errors[0]:.3g}, Euler's {errors[1]:.3g} at 10 steps"


def test_bad_arguments():
    with pytest.raises(ValueError, match="UniPC order must be an integer >= 1 and <= 3, got 5"):
        kd.samplers.UniPC(order=5)
    with pytest.raises(ValueError, match="UniPC of order 2 needs num_steps >= 2, got 1"):
        kd.samplers.UniPC().sample(lambda x, t: x, initial_noise(), 1, kd.diffusion.RectifiedFlow())


def test_not_for_discrete_models():
    objective = kd.diffusion.DiscreteCTMC(4)
    with pytest.raises(ValueError, match="UniPC samples GaussianDiffusion or RectifiedFlow models, got DiscreteCTMC"):
        kd.samplers.UniPC().sample(lambda x, t: x, initial_noise(), 5, objective)
    with pytest.raises(ValueError, match="The UniPC sampler samples GaussianDiffusion or RectifiedFlow models.*"
                                         "DiscreteCTMC; use tau_leaping or euler"):
        kd.samplers.get_sampler("unipc", objective)

"""DPM-Solver++ multistep: parity with diffusers' DPMSolverMultistepScheduler (Gaussian and flow), order, checks."""

import numpy as np
import pytest

import keras_dit as kd
from keras_dit.diffusion.samplers import flow_times
from tests.diffusion.samplers.parity import assert_multistep_parity, initial_noise, ten_step_errors

diffusers = pytest.importorskip("diffusers")


def assert_matches_diffusers(objective, num_steps, order=2, spacing="linspace", **kwargs):
    sampler = kd.samplers.DPMSolverMultistep(order=order, timestep_spacing=spacing, **kwargs)
    assert_multistep_parity("DPMSolverMultistep", sampler, diffusers.DPMSolverMultistepScheduler, objective, num_steps,
                            solver_order=order, timestep_spacing=spacing, **kwargs)


@pytest.mark.parametrize("spacing,num_steps", [("linspace", 5), ("linspace", 37), ("leading", 10), ("trailing", 20),
                                               ("trailing", 7)])
def test_parity_spacings(spacing, num_steps):
    assert_matches_diffusers(kd.diffusion.GaussianDiffusion(), num_steps, spacing=spacing)


@pytest.mark.parametrize("prediction", ["eps", "v", "x0"])
@pytest.mark.parametrize("order", [1, 2, 3])
def test_parity_predictions_and_orders(prediction, order):
    assert_matches_diffusers(kd.diffusion.GaussianDiffusion(prediction=prediction), 12, order=order, spacing="trailing")


@pytest.mark.parametrize("schedule", ["scaled_linear", "cosine"])
def test_parity_schedules_learned_sigma_and_long_runs(schedule):
    # 25 steps: the second-to-last step keeps order 3 (lower_order_final applies below 15 steps).
    objective = kd.diffusion.GaussianDiffusion(schedule, "eps", learn_sigma=True)
    assert_matches_diffusers(objective, 25, order=3, spacing="leading", lower_order_final=False)


@pytest.mark.parametrize("shift", [1.0, 3.0])
@pytest.mark.parametrize("order,num_steps", [(2, 4), (2, 25), (3, 9)])
def test_parity_flow(shift, order, num_steps):
    assert_matches_diffusers(kd.diffusion.RectifiedFlow(shift=shift), num_steps, order=order)


@pytest.mark.parametrize("order", [2, 3])
def test_parity_flow_uniform_grid(order):
    # keras_dit's grid starts at t = 1 (alpha = 0, lambda = -inf): the steps that would use it are first order.
    objective = kd.diffusion.RectifiedFlow(shift=2.0)
    sampler = kd.samplers.DPMSolverMultistep(order=order, time_grid="uniform")
    assert_multistep_parity("DPMSolverMultistep", sampler, diffusers.DPMSolverMultistepScheduler, objective, 10,
                            sigmas=flow_times(10, 2.0)[:-1], solver_order=order)


@pytest.mark.parametrize("order", [2, 3])
def test_ten_steps_beat_euler(order):
    errors = ten_step_errors(kd.samplers.DPMSolverMultistep(order=order))
    assert errors[0] < errors[1] / 5, f"DPM-Solver++ error {errors[0]:.3g}, Euler's {errors[1]:.3g} at 10 steps"


def test_inference_shift_overrides_the_objective():
    objective = kd.diffusion.RectifiedFlow(shift=1.0)
    times = kd.samplers.DPMSolverMultistep(shift=3.0).timesteps(6, objective)
    np.testing.assert_allclose(times, flow_times(6, 3.0, "dpm_solver")[:-1])
    with pytest.raises(ValueError, match="shift=3.0 is a time shift for RectifiedFlow models.*GaussianDiffusion"):
        kd.samplers.DPMSolverMultistep(shift=3.0).timesteps(6, kd.diffusion.GaussianDiffusion())


@pytest.mark.parametrize("order", [0, 4, 2.0, True])
def test_bad_order(order):
    with pytest.raises(ValueError, match="DPMSolverMultistep order must be an integer >= 1 and <= 3"):
        kd.samplers.DPMSolverMultistep(order=order)


def test_num_steps_below_order():
    with pytest.raises(ValueError, match="DPMSolverMultistep of order 3 needs num_steps >= 3, got 2"):
        kd.samplers.DPMSolverMultistep(order=3).sample(lambda x, t: x, initial_noise(), 2, kd.diffusion.RectifiedFlow())

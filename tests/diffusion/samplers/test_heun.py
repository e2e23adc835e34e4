"""Heun: parity with diffusers' FlowMatchHeunDiscreteScheduler, and second order on a flow solved in closed form."""

import numpy as np
import pytest
from keras import ops

import keras_dit as kd
from tests.diffusion.samplers.parity import (
    assert_parity, convergence_ratios, diffusers_sample, flow_model, initial_noise,
)
from tests.helpers import to_numpy

diffusers = pytest.importorskip("diffusers")

@pytest.mark.parametrize("shift", [1.0, 3.0])
def test_second_order(shift):
    ratios = convergence_ratios(kd.samplers.Heun(), shift)
    assert np.all((ratios > 3.2) & (ratios < 5.0)), f"Heun error ratios when steps double: {ratios}, expected ~4"


def test_evaluations_and_times():
    calls = []

    def model_fn(x, t):
        calls.append(float(to_numpy(t)[0]))
        return ops.zeros_like(x)

    kd.samplers.Heun().sample(model_fn, np.zeros((1, 2), "float32"), 4, kd.diffusion.RectifiedFlow())
    # 4 steps on 1, 0.75, 0.5, 0.25, 0: a second evaluation at each step's end except the last (an Euler step).
    np.testing.assert_allclose(calls, [1.0, 0.75, 0.75, 0.5, 0.5, 0.25, 0.25])


@pytest.mark.parametrize("shift", [1.0, 3.0])
@pytest.mark.parametrize("num_steps", [1, 5, 30])
def test_parity(shift, num_steps):
    import torch

    objective = kd.diffusion.RectifiedFlow(shift=shift)
    noise = initial_noise()
    ours = kd.samplers.Heun().sample(flow_model, noise, num_steps, objective)
    # FlowMatchHeunDiscreteScheduler.set_timesteps has no custom sigmas; lay our grid out as it lays out its own:
    # every time but the first and the final 0 twice (the Euler predictor ends there, the corrector starts there).
    scheduler = diffusers.FlowMatchHeunDiscreteScheduler(shift=shift)
    scheduler.set_timesteps(num_steps)
    unshifted = np.linspace(1.0, 0.0, num_steps + 1)
    sigmas = torch.tensor(shift * unshifted / (1 + (shift - 1) * unshifted), dtype=torch.float32)
    scheduler.sigmas = torch.cat([sigmas[:1], sigmas[1:-1].repeat_interleave(2), sigmas[-1:]])
    scheduler.timesteps = 1000 * scheduler.sigmas[:-1]
    assert_parity("Heun", ours, diffusers_sample(scheduler, flow_model, noise, flow=True))


@pytest.mark.parametrize("shift", [1.0, 3.0])
@pytest.mark.parametrize("num_steps", [1, 6, 28])
@pytest.mark.parametrize("name", ["Euler", "Heun"])
def test_parity_diffusers_grid(name, shift, num_steps):
    """time_grid="diffusers": the FlowMatch schedulers' own set_timesteps(n) grid."""
    noise = initial_noise()
    sampler = getattr(kd.samplers, name)(time_grid="diffusers")
    ours = sampler.sample(flow_model, noise, num_steps, kd.diffusion.RectifiedFlow(shift=shift))
    scheduler = getattr(diffusers, f"FlowMatch{name}DiscreteScheduler")(shift=shift)
    scheduler.set_timesteps(num_steps)
    assert_parity(name, ours, diffusers_sample(scheduler, flow_model, noise, flow=True))

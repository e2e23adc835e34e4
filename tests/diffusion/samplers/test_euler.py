"""Euler: trajectory parity with diffusers' FlowMatchEulerDiscreteScheduler (with shift), and first order."""

import numpy as np
import pytest

import keras_dit as kd
from tests.diffusion.samplers.parity import (
    assert_parity, convergence_ratios, diffusers_sample, flow_model, initial_noise,
)

diffusers = pytest.importorskip("diffusers")


@pytest.mark.parametrize("shift", [1.0, 3.0])
@pytest.mark.parametrize("num_steps", [1, 4, 28, 60])
def test_parity(shift, num_steps):
    objective = kd.diffusion.RectifiedFlow(shift=shift)
    noise = initial_noise()
    ours = kd.samplers.Euler().sample(flow_model, noise, num_steps, objective)
    # Our grid is linspace(1, 0, n + 1) shifted: diffusers' with these unshifted sigmas (it shifts, appends 0).
    scheduler = diffusers.FlowMatchEulerDiscreteScheduler(shift=shift)
    scheduler.set_timesteps(sigmas=np.linspace(1.0, 0.0, num_steps + 1)[:-1])
    theirs = diffusers_sample(scheduler, flow_model, noise, flow=True)
    assert_parity("Euler", ours, theirs)


def test_inference_shift():
    # Euler(shift=3) on a shift-1 objective is Euler on a shift-3 one.
    noise = initial_noise()
    shifted = kd.samplers.Euler(shift=3.0).sample(flow_model, noise, 6, kd.diffusion.RectifiedFlow())
    unshifted = kd.samplers.Euler().sample(flow_model, noise, 6, kd.diffusion.RectifiedFlow(shift=3.0))
    assert_parity("Euler", shifted, unshifted)
    with pytest.raises(ValueError, match="shift must be a positive number or None, got 0; None takes the objective's"):
        kd.samplers.Euler(shift=0)


def test_first_order():
    ratios = convergence_ratios(kd.samplers.Euler(), shift=1.0)
    assert np.all((ratios > 1.6) & (ratios < 2.5)), f"Euler error ratios when steps double: {ratios}, expected ~2"

"""Beta schedules against diffusers' tables, and the shared name check."""

import numpy as np
import pytest

import keras_dit as kd

diffusers = pytest.importorskip("diffusers")


@pytest.mark.parametrize("name,peer_kwargs", [
    ("linear", {}),
    ("scaled_linear", {"beta_start": 0.00085, "beta_end": 0.012}),
    ("cosine", {"beta_schedule": "squaredcos_cap_v2"}),
])
@pytest.mark.parametrize("steps", [1000, 250])
def test_schedules_match_diffusers(name, peer_kwargs, steps):
    if name == "linear":  # DiT scales both ends by 1000 / T
        peer_kwargs = {"beta_start": 1e-4 * 1000 / steps, "beta_end": 0.02 * 1000 / steps}
    peer = diffusers.DDPMScheduler(num_train_timesteps=steps, **{"beta_schedule": name, **peer_kwargs})
    betas = kd.diffusion.beta_schedule(name, steps)
    assert betas.dtype == np.float64 and betas.shape == (steps,)
    np.testing.assert_allclose(betas, peer.betas.numpy(), rtol=1e-6, err_msg=name)
    # diffusers accumulates the product in float32; ours is float64.
    np.testing.assert_allclose(np.cumprod(1 - betas), peer.alphas_cumprod.numpy(), rtol=2e-5, err_msg=name)


def test_dit_linear_schedule_is_float64_linspace():
    np.testing.assert_array_equal(kd.diffusion.beta_schedule("linear"), np.linspace(1e-4, 0.02, 1000))


def test_bad_schedule_and_steps():
    with pytest.raises(ValueError, match="Unknown beta schedule 'cosin'. Did you mean 'cosine'.*'linear'"):
        kd.diffusion.beta_schedule("cosin")
    with pytest.raises(ValueError, match="num_train_timesteps must be an integer >= 2, got 1"):
        kd.diffusion.beta_schedule("linear", 1)

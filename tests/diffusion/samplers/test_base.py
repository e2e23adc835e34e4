"""Shared sampler machinery: time grids against diffusers, get_sampler, input checks, configs."""

import keras
import numpy as np
import pytest
from keras import ops

import keras_dit as kd
from keras_dit.diffusion.samplers import flow_times, solver_timesteps, spaced_timesteps, step_coefficients
from tests.diffusion.samplers.parity import flow_model, gaussian_model, initial_noise

diffusers = pytest.importorskip("diffusers")


@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
@pytest.mark.parametrize("num_train_timesteps", [1000, 37])
def test_spaced_timesteps_match_diffusers(spacing, num_train_timesteps):
    scheduler = diffusers.DDPMScheduler(num_train_timesteps=num_train_timesteps, timestep_spacing=spacing)
    for n in sorted({1, 2, 3, 7, 10, 33, 250, 999, num_train_timesteps} & set(range(1, num_train_timesteps + 1))):
        scheduler.set_timesteps(n)
        ours = spaced_timesteps(n, num_train_timesteps, spacing)
        np.testing.assert_array_equal(ours, scheduler.timesteps.numpy(), err_msg=f"{spacing}, {n} steps")


@pytest.mark.parametrize("total,n", [(15, 13), (17, 7), (34, 14)])
def test_trailing_float_stride_keeps_n_valid_steps(total, n):
    # np.arange with stride T / n gives an extra value here (a -1 timestep in diffusers); ours keeps n.
    steps = spaced_timesteps(n, total, "trailing")
    assert len(steps) == n and steps.min() >= 0 and steps[0] == total - 1


@pytest.mark.parametrize("shift", [1.0, 3.0])
def test_flow_times_match_diffusers(shift):
    scheduler = diffusers.FlowMatchEulerDiscreteScheduler(shift=shift)
    scheduler.set_timesteps(sigmas=np.linspace(1.0, 0.0, 9)[:-1])
    np.testing.assert_allclose(flow_times(8, shift), scheduler.sigmas.numpy(), atol=1e-7)


@pytest.mark.parametrize("shift", [1.0, 3.0])
@pytest.mark.parametrize("num_steps", [1, 5, 28])
def test_diffusers_flow_grids(shift, num_steps):
    schedulers = {
        "flow_match": diffusers.FlowMatchEulerDiscreteScheduler(shift=shift),
        "dpm_solver": diffusers.DPMSolverMultistepScheduler(use_flow_sigmas=True, flow_shift=shift,
                                                            prediction_type="flow_prediction"),
        "unipc": diffusers.UniPCMultistepScheduler(use_flow_sigmas=True, flow_shift=shift,
                                                   prediction_type="flow_prediction"),
    }
    for grid, scheduler in schedulers.items():
        scheduler.set_timesteps(num_steps)
        np.testing.assert_allclose(flow_times(num_steps, shift, grid), scheduler.sigmas.numpy(), atol=1e-6,
                                   err_msg=grid)


@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
def test_solver_timesteps_match_diffusers(spacing):
    scheduler = diffusers.DPMSolverMultistepScheduler(timestep_spacing=spacing)
    for n in (1, 2, 7, 10, 33, 250, 999):
        scheduler.set_timesteps(n)
        np.testing.assert_array_equal(solver_timesteps(n, 1000, spacing), scheduler.timesteps.numpy(), err_msg=f"{n}")


def test_step_api_is_what_sample_runs():
    """A user loop over coefficients / initial_state / step gives sample()'s result (the documented recipe)."""
    objective = kd.diffusion.GaussianDiffusion(prediction="v")
    model_fn, noise = gaussian_model(objective), initial_noise()
    for sampler in (kd.samplers.DDPM(), kd.samplers.UniPC(order=3), kd.samplers.DPMSolverMultistep()):
        tables = sampler.coefficients(8, objective)
        np.testing.assert_array_equal(tables["t"], sampler.timesteps(8, objective))
        x, state, generator = ops.convert_to_tensor(noise), sampler.initial_state(noise), keras.random.SeedGenerator(4)
        for i in range(8):
            step_noise = sampler.noise_like(x, generator) if sampler.stochastic else None
            x, state = sampler.step(model_fn, x, step_coefficients(tables, i), state, objective, step_noise)
        expected = sampler.sample(model_fn, noise, 8, objective, seed=keras.random.SeedGenerator(4))
        np.testing.assert_allclose(ops.convert_to_numpy(x), ops.convert_to_numpy(expected), atol=1e-6)


def test_get_sampler():
    assert isinstance(kd.samplers.get_sampler("DDIM"), kd.samplers.DDIM)
    assert kd.samplers.get_sampler("ddim", eta=0.5).eta == 0.5
    heun = kd.samplers.Heun()
    assert kd.samplers.get_sampler(heun) is heun
    assert isinstance(kd.samplers.get_sampler("dpm_solver", order=3), kd.samplers.DPMSolverMultistep)
    assert isinstance(kd.samplers.get_sampler("UniPC"), kd.samplers.UniPC)
    with pytest.raises(ValueError, match="Unknown sampler 'dpm'.*'ddpm', 'ddim', 'euler', 'heun', 'dpm_solver'"):
        kd.samplers.get_sampler("dpm")


@pytest.mark.parametrize("sampler", [kd.samplers.DDPM(variance="large", timestep_spacing="trailing", clip_x0=1.0),
                                     kd.samplers.DDIM(eta=0.3, step_rule="stride", set_alpha_to_one=False),
                                     kd.samplers.Euler(time_grid="diffusers", shift=2.0), kd.samplers.Heun(),
                                     kd.samplers.DPMSolverMultistep(order=3, lower_order_final=False),
                                     kd.samplers.UniPC(time_grid="uniform", shift=3.0)])
def test_config_round_trip(sampler):
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(sampler))
    assert type(restored) is type(sampler) and restored.get_config() == sampler.get_config()


def test_unknown_spacing():
    with pytest.raises(ValueError, match="Unknown timestep_spacing 'trailng'. Did you mean 'trailing'"):
        kd.samplers.DDIM(timestep_spacing="trailng")


@pytest.mark.parametrize("num_steps", [0, -3, 1001, 2.5, True])
def test_bad_num_steps(num_steps):
    objective = kd.diffusion.GaussianDiffusion()
    with pytest.raises(ValueError, match=r"num_steps must be an integer >= 1 and <= 1000, got .*timesteps=1000"):
        kd.samplers.DDIM().sample(gaussian_model(objective), initial_noise(), num_steps, objective)


def test_bad_num_steps_flow():
    with pytest.raises(ValueError, match="num_steps must be an integer >= 1, got 0"):
        kd.samplers.Euler().sample(flow_model, initial_noise(), 0, kd.diffusion.RectifiedFlow())


@pytest.mark.parametrize("noise", [np.zeros((4,), "float32"), np.float32(1.0)])
def test_noise_rank(noise):
    with pytest.raises(ValueError, match="noise must be a .B, .... tensor of rank >= 2"):
        kd.samplers.Euler().sample(flow_model, noise, 2, kd.diffusion.RectifiedFlow())


@pytest.mark.parametrize("sampler,objective,hint", [
    (kd.samplers.DDIM(), kd.diffusion.RectifiedFlow(), "use Euler, Heun, DPMSolverMultistep or UniPC"),
    (kd.samplers.DDPM(), kd.diffusion.RectifiedFlow(), "use Euler, Heun, DPMSolverMultistep or UniPC"),
    (kd.samplers.Euler(), kd.diffusion.GaussianDiffusion(), "use DDPM, DDIM, DPMSolverMultistep or UniPC"),
    (kd.samplers.Heun(), kd.diffusion.GaussianDiffusion(), "use DDPM, DDIM, DPMSolverMultistep or UniPC"),
])
def test_wrong_objective(sampler, objective, hint):
    with pytest.raises(ValueError, match=f"{type(sampler).__name__} samples .*; {hint} for it"):
        sampler.sample(flow_model, initial_noise(), 2, objective)


def test_not_an_objective():
    with pytest.raises(ValueError, match="DDIM samples GaussianDiffusion models, got 'linear'; pass the objective"):
        kd.samplers.DDIM().sample(flow_model, initial_noise(), 2, "linear")


def test_model_output_channels_checked():
    objective = kd.diffusion.GaussianDiffusion(learn_sigma=True)
    with pytest.raises(ValueError, match=r"model_fn returned shape \(2, 4, 4, 3\).*expected \(2, 4, 4, 6\)"):
        kd.samplers.DDPM().sample(lambda x, t: x, initial_noise(), 2, objective)


def test_seed_types():
    objective = kd.diffusion.GaussianDiffusion()
    generator = keras.random.SeedGenerator(5)
    sample = kd.samplers.DDPM().sample(gaussian_model(objective), initial_noise(), 3, objective, seed=generator)
    assert tuple(ops.shape(sample)) == initial_noise().shape
    with pytest.raises(ValueError, match="seed must be an int, a keras.random.SeedGenerator or None, got str"):
        kd.samplers.DDPM().sample(gaussian_model(objective), initial_noise(), 3, objective, seed="0")

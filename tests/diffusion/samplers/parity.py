"""Shared support for the sampler parity tests against diffusers' schedulers.

Both sides run the same analytic model function (evaluated with keras.ops on both sides; only the scheduler
maths differs) from the same initial noise; diffusers runs in float64 with our schedule tables (``share_tables``
says why), so the differences measured are our float32 rounding plus any difference in the algorithm.

Stochastic samplers get the same noise this way: the test draws the per-step normals up front, our sampler
reads them through its ``noise_like`` hook (``InjectedNoise``), and diffusers gets them through
``step(variance_noise=...)`` (DDIM) or a patched ``randn_tensor`` (DDPM, which has no such argument). Our
samplers draw a normal at every step but add none on the last (they return the mean); diffusers' DDPM adds one
there when the last timestep is above 0 (``"trailing"``), so both sides get zeros for the last step.

Run as a script to print the largest parity error of each scheduler over the tested configurations:
``KERAS_BACKEND=jax python -m tests.diffusion.samplers.parity``.
"""

import numpy as np
from keras import ops

import keras_dit as kd
from tests.helpers import assert_close, max_abs_diff, nchw_to_nhwc, nhwc_to_nchw, to_numpy, to_torch

SHAPE = (2, 4, 4, 3)  # (B, H, W, C)


# Few-step accuracy against a flow solved in closed form (Heun, Euler, DPM-Solver, UniPC)

MU, STD = 0.5, 0.6  # the data distribution N(MU, STD^2), elementwise


def gaussian_data_velocity(x, t):
    """The exact rectified-flow velocity E[eps - x0 | x_t = x] for data N(MU, STD^2) and noise N(0, 1).

    x_t = (1 - t) x0 + t eps has variance V = (1 - t)^2 STD^2 + t^2, and the ODE maps x_1 to
    x_t = (1 - t) MU + sqrt(V) x_1, so x_0 = MU + STD x_1 exactly.
    """
    t = t[:, None]
    variance = (1.0 - t) ** 2 * STD**2 + t**2
    centred = x - (1.0 - t) * MU
    return t / variance * centred - MU - (1.0 - t) * STD**2 / variance * centred


def solution_errors(sampler, shift, steps):
    """Max error of ``sampler`` against the exact solution, for each step count in ``steps``."""
    noise = np.random.default_rng(0).standard_normal((8, 4)).astype("float32")
    exact = MU + STD * noise.astype(np.float64)
    objective = kd.diffusion.RectifiedFlow(shift=shift)
    return np.array([
        np.max(np.abs(to_numpy(sampler.sample(gaussian_data_velocity, noise, n, objective)) - exact)) for n in steps
    ])


def convergence_ratios(sampler, shift, steps=(8, 16, 32, 64)):
    """error(n) / error(2 n) of ``sampler`` against the exact solution, for n in ``steps[:-1]``."""
    errors = solution_errors(sampler, shift, steps)
    return errors[:-1] / errors[1:]


def ten_step_errors(sampler):
    """(error of ``sampler``, error of Euler) at 10 steps against the exact solution: what few-step solvers gain."""
    return solution_errors(sampler, 1.0, (10,))[0], solution_errors(kd.samplers.Euler(), 1.0, (10,))[0]


def initial_noise(seed=0, shape=SHAPE):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def step_noises(count, seed=1, shape=SHAPE):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype("float32") for _ in range(count)]


def gaussian_model(objective):
    """A smooth, non-trivial stand-in for a trained network of ``objective`` (prediction type, learn_sigma).

    Like a trained network, it denoises consistently: a bounded guess of x0 from (x, t), turned into the
    objective's prediction type with the implied noise, so trajectories stay O(1) as real ones do; the
    variance channels are another smooth function of (x, t) in (-1, 1).
    """
    alphas_cumprod = ops.convert_to_tensor(objective.alphas_cumprod.astype("float32"))

    def model_fn(x, t):
        x, t = ops.convert_to_tensor(x), ops.convert_to_tensor(t)
        a = ops.take(alphas_cumprod, ops.cast(t, "int32"))[:, None, None, None]
        s = t[:, None, None, None] / 1000.0
        x0 = 0.8 * ops.tanh(1.5 * x) * (1.0 - 0.3 * s) + 0.1 * ops.sin(3.0 * x + 4.0 * s)
        eps = (x - ops.sqrt(a) * x0) / ops.sqrt(1.0 - a)
        prediction = objective.from_x0_eps(x0, eps, ops.sqrt(a), ops.sqrt(1.0 - a))
        if not objective.learn_sigma:
            return prediction
        return ops.concatenate([prediction, 0.9 * ops.tanh(0.5 * x - 2.0 * s + 0.3)], axis=-1)

    return model_fn


def flow_model(x, t):
    """A smooth velocity field of x and t in [0, 1]."""
    x, t = ops.convert_to_tensor(x), ops.convert_to_tensor(t)
    s = t[:, None, None, None]
    return 0.8 * ops.tanh(x) * (1.0 - 0.5 * s) + 0.4 * ops.cos(3.0 * x + 2.0 * s) - 0.2 * s


class InjectedNoise:
    """Mixin for a sampler class: ``noise_like`` returns the given arrays, in order, instead of random normals."""

    def __init__(self, noises, **kwargs):
        super().__init__(**kwargs)
        self.noises = list(noises)

    def noise_like(self, x, seed_generator):
        return ops.convert_to_tensor(self.noises.pop(0))


ERRORS = {}  # scheduler name -> largest parity error seen in this process


def assert_parity(name, ours, theirs, atol=1e-5):
    """Assert our final sample equals diffusers' to ``atol``; remember the error for the summary script."""
    error = max_abs_diff(ours, theirs)
    ERRORS[name] = max(ERRORS.get(name, 0.0), error)
    assert_close(ours, theirs, atol=atol, what=f"{name} vs diffusers")


def diffusers_sample(scheduler, model_fn, noise, noises=(), step_kwargs=None, flow=False):
    """Run a diffusers scheduler's ``step`` loop (after ``set_timesteps``) with ``model_fn`` (NHWC, our time units).

    ``noises``: per-step variance noise (NHWC), passed as ``variance_noise`` to every step (DDIM). Flow
    schedulers (``flow=True``) give the model ``sigma`` (t in [0, 1]) rather than ``timestep``.
    """
    import torch

    x = to_torch(nhwc_to_nchw(noise)).double()
    for i, timestep in enumerate(scheduler.timesteps):
        t = float(scheduler.sigmas[i]) if flow else float(timestep)
        output = model_fn(nchw_to_nhwc(x.numpy()).astype("float32"), np.full((noise.shape[0],), t, dtype="float32"))
        kwargs = dict(step_kwargs or {})
        if noises:
            kwargs["variance_noise"] = to_torch(nhwc_to_nchw(noises[i])).double()
        with torch.no_grad():
            output = to_torch(nhwc_to_nchw(to_numpy(output))).double()
            x = scheduler.step(output, timestep, x, **kwargs).prev_sample
    return nchw_to_nhwc(x.numpy())


def share_tables(scheduler, objective):
    """Give a diffusers scheduler our float64 schedule tables; ``diffusers_sample`` then runs it in float64.

    diffusers keeps its tables and does its arithmetic in the samples' dtype. In float32 its
    ``1 - alpha_bar`` loses a relative ~3e-4 at t = 0 and its ``alpha_bar`` product drifts ~1e-6 near T - 1,
    both amplified by the sampler's divisions, so a float32 diffusers run is itself ~1e-4 away from the exact
    result. Run in float64 it is the reference, and what remains is our float32 rounding (the schedule tables
    themselves are compared in test_schedules).
    """
    import torch

    scheduler.betas = torch.tensor(objective.betas, dtype=torch.float64)
    scheduler.alphas = torch.tensor(1.0 - objective.betas, dtype=torch.float64)
    scheduler.alphas_cumprod = torch.tensor(objective.alphas_cumprod, dtype=torch.float64)
    scheduler.one = torch.tensor(1.0, dtype=torch.float64)
    if hasattr(scheduler, "final_alpha_cumprod"):  # DDIM's alpha_bar after the last step
        final = 1.0 if scheduler.config.set_alpha_to_one else objective.alphas_cumprod[0]
        scheduler.final_alpha_cumprod = torch.tensor(final, dtype=torch.float64)
    return scheduler


def patched_ddpm_noise(monkeypatch, noises):
    """Make diffusers' DDPMScheduler draw ``noises`` (NHWC arrays, in order) instead of random normals."""
    from diffusers.schedulers import scheduling_ddpm

    queue = [to_torch(nhwc_to_nchw(n)).double() for n in noises]
    monkeypatch.setattr(scheduling_ddpm, "randn_tensor", lambda *args, **kwargs: queue.pop(0))


PREDICTION_TYPES = {"eps": "epsilon", "v": "v_prediction", "x0": "sample"}
SCHEDULES = {"cosine": "squaredcos_cap_v2"}


def scheduler_config(objective):
    """diffusers scheduler arguments for ``objective``: its beta schedule and prediction type, or for a flow
    ``use_flow_sigmas=True, prediction_type="flow_prediction", flow_shift=shift`` (the multistep solvers')."""
    if not hasattr(objective, "alphas_cumprod"):
        return {"use_flow_sigmas": True, "prediction_type": "flow_prediction", "flow_shift": objective.shift}
    return {
        "beta_schedule": SCHEDULES.get(objective.schedule, objective.schedule),
        **({"beta_start": 0.00085, "beta_end": 0.012} if objective.schedule == "scaled_linear" else {}),
        "prediction_type": PREDICTION_TYPES[objective.prediction],
        **({"variance_type": "learned_range"} if objective.learn_sigma else {}),
    }


def assert_multistep_parity(name, sampler, scheduler_class, objective, num_steps, sigmas=None, **scheduler_kwargs):
    """Sample with our multistep ``sampler`` and with diffusers' ``scheduler_class`` (configured for
    ``objective``, then ``scheduler_kwargs``) from the same noise with the same analytic model; assert parity.

    ``sigmas``: a flow grid to impose on diffusers (n times, without the final 0). diffusers keeps its sigmas in
    float32 and computes each step's log-SNR from them; they are made float64 here (for Gaussian objectives
    recomputed from our float64 tables at its timesteps), as ``share_tables`` says why.
    """
    import torch

    flow = not hasattr(objective, "alphas_cumprod")
    model_fn = flow_model if flow else gaussian_model(objective)
    noise = initial_noise()
    ours = sampler.sample(model_fn, noise, num_steps, objective)
    scheduler = scheduler_class(**scheduler_config(objective), **scheduler_kwargs)
    if flow:
        scheduler.set_timesteps(num_steps)
        if sigmas is not None:
            scheduler.sigmas = torch.tensor(np.append(sigmas, 0.0))
        scheduler.sigmas = scheduler.sigmas.double()
    else:
        share_tables(scheduler, objective)
        scheduler.set_timesteps(num_steps)
        a = objective.alphas_cumprod[scheduler.timesteps.numpy()]
        scheduler.sigmas = torch.tensor(np.append(np.sqrt((1.0 - a) / a), 0.0), dtype=torch.float64)
    assert_parity(name, ours, diffusers_sample(scheduler, model_fn, noise, flow=flow))


if __name__ == "__main__":
    import sys

    import pytest

    code = pytest.main(["-q", "-p", "no:cacheprovider", "tests/diffusion/samplers", "-k", "parity"])
    for name, error in sorted(sys.modules["tests.diffusion.samplers.parity"].ERRORS.items()):
        print(f"{name}: max abs error {error:.3g}")
    sys.exit(code)

"""What every sampler shares: input checks, the seed, the noise hook, the time grids and the step-level API.

A sampler turns noise into data by calling ``model_fn(x, t)`` with ``t`` a (B,) float32 tensor in the
objective's native units (integer-valued timesteps for ``GaussianDiffusion``, t in [0, 1] for
``RectifiedFlow``) and getting back the raw backbone output (variance channels included).

Every sampler is written as steps: ``coefficients(num_steps, objective)`` computes, in float64 NumPy, one table
per step coefficient (``"t"``, the model time of each step, among them); ``step(model_fn, x, coefficients_i,
state, objective, noise)`` applies one step with ``keras.ops``, given step i's coefficients (Python floats, or
scalar tensors inside a compiled loop) and the sampler's ``state`` (a tuple of tensors, the earlier predictions
of multistep solvers). ``sample`` is the Python loop over those steps; ``DiffusionModel.generate`` runs the same
steps as one compiled loop. A user loop (img2img, inpainting, a per-step callback) does the same::

    tables = sampler.coefficients(num_steps, objective)
    state = sampler.initial_state(x)
    for i in range(num_steps):
        noise = sampler.noise_like(x, seed_generator) if sampler.stochastic else None
        x, state = sampler.step(model_fn, x, step_coefficients(tables, i), state, objective, noise)
"""

import keras
import numpy as np
from keras import ops

from keras_dit.diffusion.configurable import Configurable
from keras_dit.diffusion.flow import RectifiedFlow, shift_time
from keras_dit.diffusion.gaussian import GaussianDiffusion
from keras_dit.validation import check_choice, check_int, check_positive

TIMESTEP_SPACINGS = ("leading", "trailing", "linspace")
TIME_GRIDS = ("uniform", "diffusers")
FLOW_TRAIN_TIMESTEPS = 1000  # diffusers' flow schedulers' num_train_timesteps: the model sees 1000 t


def spaced_timesteps(num_steps, num_train_timesteps, spacing):
    """The ``num_steps`` integer timesteps a Gaussian sampler visits, descending, as diffusers spaces them.

    ``"linspace"``: rounded ``linspace(0, T - 1, n)`` (DiT's respacing: first step at T - 1, last at 0).
    ``"leading"``: ``0, T // n, 2 (T // n), ...`` (first step below T - 1). ``"trailing"``: ``T - 1`` down in
    strides of ``T / n`` (Lin et al. 2024; last step above 0).
    """
    check_choice("timestep_spacing", spacing, TIMESTEP_SPACINGS)
    n, total = num_steps, num_train_timesteps
    if spacing == "linspace":
        steps = np.linspace(0, total - 1, n).round()[::-1]
    elif spacing == "leading":
        steps = (np.arange(n) * (total // n))[::-1]
    else:
        steps = _trailing(n, total)
    return steps.astype(np.int64)


def solver_timesteps(num_steps, num_train_timesteps, spacing):
    """The ``num_steps`` timesteps of diffusers' multistep solvers (DPM-Solver, UniPC), which end at the data.

    They space ``n + 1`` points and drop the last (t = 0), since their final step goes to alpha_bar = 1:
    ``"linspace"``: rounded ``linspace(0, T - 1, n + 1)`` without 0; ``"leading"``: multiples of ``T // (n + 1)``
    without 0; ``"trailing"``: as ``spaced_timesteps``.
    """
    check_choice("timestep_spacing", spacing, TIMESTEP_SPACINGS)
    n, total = num_steps, num_train_timesteps
    if spacing == "linspace":
        steps = np.linspace(0, total - 1, n + 1).round()[::-1][:-1]
    elif spacing == "leading":
        steps = (np.arange(n + 1) * (total // (n + 1)))[::-1][:-1]
    else:
        steps = _trailing(n, total)
    return steps.astype(np.int64)


def _trailing(n, total):
    # Float stride: for some (T, n) arange yields an extra value near 0 (-1 after the shift); drop it.
    return (np.round(np.arange(total, 0, -total / n)) - 1)[:n]


def flow_times(num_steps, shift, grid="uniform"):
    """The ``num_steps + 1`` times (the last 0) a flow sampler visits, from noise (t = 1) to data.

    ``grid``: ``"uniform"``, ``shift(linspace(1, 0, n + 1))`` (keras_dit's); or the grid of a diffusers
    scheduler, with T = 1000: ``"flow_match"`` (``FlowMatchEulerDiscreteScheduler`` and
    ``FlowMatchHeunDiscreteScheduler``: ``shift(linspace(1, shift(1 / T), n))``, whose lower end is shifted
    twice, as diffusers does), ``"dpm_solver"`` (``DPMSolverMultistepScheduler(use_flow_sigmas=True)``:
    ``shift(linspace(1 - 1 / T, 0, n + 1))`` without its 0) or ``"unipc"`` (``UniPCMultistepScheduler
    (use_flow_sigmas=True)``: ``shift(linspace(1, 1 / T, n + 1))`` without its end). Each then appends 0.
    """
    n, total = num_steps, FLOW_TRAIN_TIMESTEPS
    if grid == "uniform":
        return shift_time(np.linspace(1.0, 0.0, n + 1, dtype=np.float64), shift)
    if grid == "flow_match":
        times = shift_time(np.linspace(1.0, shift_time(1.0 / total, shift), n), shift)
    elif grid == "dpm_solver":
        times = shift_time(np.linspace(1.0 - 1.0 / total, 0.0, n + 1), shift)[:-1]
    else:
        check_choice("flow time grid", grid, ("uniform", "flow_match", "dpm_solver", "unipc"))
        times = shift_time(np.linspace(1.0, 1.0 / total, n + 1)[:-1], shift)
    return np.append(times, 0.0).astype(np.float64)


def make_seed_generator(seed):
    """A ``SeedGenerator`` from an int, an existing generator, or None (seeded from the global seed)."""
    if isinstance(seed, keras.random.SeedGenerator):
        return seed
    if seed is None or (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool)):
        return keras.random.SeedGenerator(None if seed is None else int(seed))
    raise ValueError(f"seed must be an int, a keras.random.SeedGenerator or None, got {type(seed).__name__}.")


def step_coefficients(coefficients, i):
    """Step ``i``'s coefficients from the tables of ``Sampler.coefficients``: Python floats from NumPy tables,
    scalar tensors from tensor tables (``i`` may then be a tensor, the loop counter of a compiled loop)."""
    return {k: float(v[i]) if isinstance(v, np.ndarray) else v[i] for k, v in coefficients.items()}


def branch(flag, if_true, if_false):
    """``if_true()`` where the step coefficient ``flag`` is > 0, else ``if_false()``: a Python branch for a
    number, ``ops.cond`` for a tensor (inside a compiled loop). Its sampler lists ``flag`` in
    ``branch_coefficients``."""
    if isinstance(flag, (int, float, np.number)):
        return if_true() if flag > 0 else if_false()
    return ops.cond(flag > 0, if_true, if_false)


def predict(model_fn, x, t, objective):
    """``model_fn`` at ``x`` and the scalar time ``t`` (broadcast to (B,)), as float32, its shape checked."""
    t = ops.broadcast_to(ops.cast(t, "float32"), (ops.shape(x)[0],))
    output = ops.cast(model_fn(x, t), "float32")
    expected = objective.prediction_channels(x.shape[-1])
    if tuple(output.shape[:-1]) != tuple(x.shape[:-1]) or output.shape[-1] != expected:
        raise ValueError(
            f"model_fn returned shape {tuple(output.shape)} for x of shape {tuple(x.shape)}; expected "
            f"{tuple(x.shape[:-1]) + (expected,)} for {objective!r}."
        )
    return output


def _names(types):
    return " or ".join(cls.__name__ for cls in types)


class Sampler(Configurable):
    """Base class (``from_config`` / ``repr`` from ``Configurable``). Subclasses set ``objective_type`` (a class
    or a tuple of classes) and implement ``_coefficients`` and ``step`` (see the module docstring).

    ``order``: the fewest steps the sampler takes. ``branch_coefficients``: the coefficients that choose a code
    path through ``branch``; a PyTorch trace of one step is specialised on their values. ``noise_like(x,
    seed_generator)`` draws every random normal a stochastic sampler adds; tests override it to feed the exact
    noise a reference implementation uses.
    """

    objective_type = None
    stochastic = False
    order = 1
    branch_coefficients = ()

    @property
    def has_steps(self):
        """Whether the sampler implements ``step`` (the discrete-state samplers run their own loop in ``sample``)."""
        return type(self).step is not Sampler.step

    def sample(self, model_fn, noise, num_steps, objective, seed=None):
        """Integrate from ``noise`` (t = noise end) to data and return the final ``x`` (same shape as ``noise``).

        Args:
            model_fn: callable ``(x, t) -> prediction``; ``t`` is (B,) in the objective's native units.
            noise: (B, ...) initial noise, rank >= 2 (channels last).
            num_steps: number of steps (model evaluations for first-order and multistep samplers).
            objective: the ``GaussianDiffusion`` or ``RectifiedFlow`` the model was trained with.
            seed: int or ``keras.random.SeedGenerator`` for the noise of stochastic samplers.
        """
        tables = self.coefficients(num_steps, objective)
        x = self.check_noise(noise)
        seed_generator = make_seed_generator(seed) if self.stochastic else None
        state = self.initial_state(x)
        for i in range(len(tables["t"])):
            step_noise = self.noise_like(x, seed_generator) if self.stochastic else None
            x, state = self.step(model_fn, x, step_coefficients(tables, i), state, objective, step_noise)
        return x

    def coefficients(self, num_steps, objective):
        """Step coefficient tables: name -> (num_steps,) float64 array, ``"t"`` the model time of each step.

        Checks that the sampler fits ``objective`` and that ``num_steps`` is valid for both.
        """
        self._check_objective(objective)
        return self._coefficients(self._check_num_steps(num_steps, objective), objective)

    def timesteps(self, num_steps, objective):
        """(num_steps,) the time at which each step first evaluates the model, in the objective's units."""
        return self.coefficients(num_steps, objective)["t"]

    def initial_state(self, x):
        """The state ``step`` carries from step to step, before the first step: a tuple of tensors like ``x``."""
        return ()

    def step(self, model_fn, x, coefficients, state, objective, noise=None):
        """One step: ``(x, state)`` after step i, given step i's ``coefficients`` (``step_coefficients``), the
        ``state`` from the step before and, for stochastic samplers, a standard normal ``noise`` like ``x``."""
        raise NotImplementedError

    def check_noise(self, noise):
        noise = ops.convert_to_tensor(noise, "float32")
        if len(noise.shape) < 2:
            raise ValueError(
                f"noise must be a (B, ...) tensor of rank >= 2 (e.g. (B, H, W, C)), got shape {tuple(noise.shape)}."
            )
        return noise

    def noise_like(self, x, seed_generator):
        """A standard normal tensor shaped like ``x`` (the test hook: override to inject known noise)."""
        return keras.random.normal(ops.shape(x), dtype="float32", seed=seed_generator)

    def _coefficients(self, num_steps, objective):
        raise NotImplementedError

    def _step_noise(self, noise):
        if noise is None:
            raise ValueError(f"{type(self).__name__} is stochastic: pass step(..., noise=sampler.noise_like(x, seed)).")
        return noise

    def _check_objective(self, objective):
        types = self.objective_type if isinstance(self.objective_type, tuple) else (self.objective_type,)
        if isinstance(objective, types):
            return
        if isinstance(objective, GaussianDiffusion):
            hint = "use DDPM, DDIM, DPMSolverMultistep or UniPC for it"
        elif isinstance(objective, RectifiedFlow):
            hint = "use Euler, Heun, DPMSolverMultistep or UniPC for it"
        else:
            hint = "pass the objective the model was trained with"
        raise ValueError(f"{type(self).__name__} samples {_names(types)} models, got {objective!r}; {hint}.")

    def _check_num_steps(self, num_steps, objective):
        limit = getattr(objective, "num_train_timesteps", None)
        hint = None if limit is None else f"at most the objective's num_train_timesteps={limit}"
        num_steps = check_int("num_steps", num_steps, maximum=limit, hint=hint)
        if num_steps < self.order:
            raise ValueError(
                f"{type(self).__name__} of order {self.order} needs num_steps >= {self.order}, got {num_steps}; "
                f"take more steps or a lower order."
            )
        return num_steps

    def get_config(self):
        return {}


class FlowGrid:
    """Mixin for samplers of ``RectifiedFlow``: the time grid and the time shift used at inference.

    Args:
        time_grid: ``"uniform"`` (keras_dit's ``linspace(1, 0, n + 1)``, shifted) or ``"diffusers"`` (the grid
            of the diffusers scheduler this sampler matches, ``diffusers_grid``; see ``flow_times``).
        shift: SD3's time shift applied to the grid at inference; ``None`` takes the objective's ``shift``.
    """

    diffusers_grid = "flow_match"

    def _init_flow_grid(self, time_grid, shift):
        check_choice("time_grid", time_grid, TIME_GRIDS)
        self.time_grid = time_grid
        self.shift = check_positive("shift", shift, allow_none=True, hint="None takes the objective's")

    def flow_times(self, num_steps, objective):
        """The ``num_steps + 1`` flow times of this sampler for ``objective`` (the last 0)."""
        grid = self.diffusers_grid if self.time_grid == "diffusers" else "uniform"
        return flow_times(num_steps, objective.shift if self.shift is None else self.shift, grid)

    def flow_grid_config(self):
        return {"time_grid": self.time_grid, "shift": self.shift}


class GaussianSampler(Sampler):
    """A sampler for ``GaussianDiffusion``: one step per spaced timestep, from the predicted ``x0`` and ``eps``.

    Args:
        timestep_spacing: ``"linspace"`` (DiT's), ``"leading"`` or ``"trailing"``; see ``spaced_timesteps``.
        clip_x0: if set, clip the predicted x0 to [-clip_x0, clip_x0] (1.0 for pixel-space models on [-1, 1]);
            the implied noise is recomputed from the clipped x0.
    """

    objective_type = GaussianDiffusion

    def __init__(self, timestep_spacing="linspace", clip_x0=None):
        check_choice("timestep_spacing", timestep_spacing, TIMESTEP_SPACINGS)
        self.timestep_spacing = timestep_spacing
        self.clip_x0 = check_positive("clip_x0", clip_x0, allow_none=True)

    def _coefficients(self, num_steps, objective):
        steps = spaced_timesteps(num_steps, objective.num_train_timesteps, self.timestep_spacing)
        a_t = objective.alphas_cumprod[steps]
        a_next = self._next_alphas_cumprod(steps, objective)
        return {"t": steps.astype(np.float64), "signal": np.sqrt(a_t), "noise": np.sqrt(1.0 - a_t),
                **self._update_coefficients(a_t, a_next, objective)}

    def _next_alphas_cumprod(self, steps, objective):
        """alpha_bar after each step: the next spaced timestep's, and after the last the data's (1)."""
        return np.append(objective.alphas_cumprod[steps[1:]], 1.0)

    def _update_coefficients(self, a_t, a_next, objective):
        """The sampler's own tables, from alpha_bar before (``a_t``) and after (``a_next``) each step."""
        raise NotImplementedError

    def step(self, model_fn, x, coefficients, state, objective, noise=None):
        c = coefficients
        prediction, variance_values = objective.split_prediction(predict(model_fn, x, c["t"], objective))
        x0, eps = objective.to_x0_eps(prediction, x, c["signal"], c["noise"])
        if self.clip_x0 is not None:
            x0 = ops.clip(x0, -self.clip_x0, self.clip_x0)
            eps = (x - c["signal"] * x0) / c["noise"]
        return self._update(x, x0, eps, variance_values, c, noise), state

    def _update(self, x, x0, eps, variance_values, coefficients, noise):
        """The next ``x`` from the predicted ``x0`` and ``eps``."""
        raise NotImplementedError

    def get_config(self):
        return {"timestep_spacing": self.timestep_spacing, "clip_x0": self.clip_x0}


class FlowSampler(FlowGrid, Sampler):
    """A sampler for ``RectifiedFlow``: integrates dx/dt = v(x, t) from t = 1 to 0 on ``flow_times``.

    Args:
        time_grid, shift: see ``FlowGrid``.
    """

    objective_type = RectifiedFlow

    def __init__(self, time_grid="uniform", shift=None):
        self._init_flow_grid(time_grid, shift)

    def _coefficients(self, num_steps, objective):
        times = self.flow_times(num_steps, objective)
        return {"t": times[:-1], "t_next": times[1:], "dt": times[1:] - times[:-1]}

    def get_config(self):
        return self.flow_grid_config()

"""Samplers: turn noise into data with a model function ``model_fn(x, t)``.

``DDPM`` and ``DDIM`` sample ``GaussianDiffusion`` models; ``Euler`` and ``Heun`` sample ``RectifiedFlow``
models; the few-step multistep solvers ``DPMSolverMultistep`` (DPM-Solver++) and ``UniPC`` sample both;
``TauLeaping`` and ``DiscreteEuler`` (in ``keras_dit.diffusion.discrete``) sample ``DiscreteCTMC`` models.
``get_sampler("ddim")`` builds one by name; ``default_sampler(objective)`` names the usual one. Every sampler
but the discrete ones exposes its steps (``coefficients``, ``initial_state``, ``step``; see ``base``).
"""

from keras_dit.diffusion.flow import RectifiedFlow
from keras_dit.diffusion.gaussian import GaussianDiffusion
from keras_dit.diffusion.samplers.base import (
    Sampler, flow_times, solver_timesteps, spaced_timesteps, step_coefficients,
)
from keras_dit.diffusion.samplers.ddim import DDIM
from keras_dit.diffusion.samplers.ddpm import DDPM
from keras_dit.diffusion.samplers.dpm_solver import DPMSolverMultistep
from keras_dit.diffusion.samplers.euler import Euler
from keras_dit.diffusion.samplers.heun import Heun
from keras_dit.diffusion.samplers.unipc import UniPC
from keras_dit.validation import check_choice

SAMPLERS = {"ddpm": DDPM, "ddim": DDIM, "euler": Euler, "heun": Heun, "dpm_solver": DPMSolverMultistep,
            "unipc": UniPC}


def _discrete_samplers():
    # Imported here: keras_dit.diffusion.discrete.samplers itself imports samplers.base.
    from keras_dit.diffusion.discrete import DISCRETE_SAMPLERS, DiscreteCTMC

    return DISCRETE_SAMPLERS, DiscreteCTMC


def default_sampler(objective):
    """The sampler ``generate`` uses when none is named: tau-leaping for ``DiscreteCTMC``, Euler for
    ``RectifiedFlow``, DDIM otherwise."""
    if isinstance(objective, _discrete_samplers()[1]):
        return "tau_leaping"
    return "euler" if isinstance(objective, RectifiedFlow) else "ddim"


def get_sampler(name, objective=None, **kwargs):
    """A sampler by name, built with ``kwargs``; a ``Sampler`` instance is returned as it is.

    Names (any case): ``"ddpm"``, ``"ddim"``, ``"euler"``, ``"heun"``, ``"dpm_solver"``, ``"unipc"`` and the
    discrete ``"tau_leaping"``, ``"discrete_euler"``. With a ``DiscreteCTMC`` ``objective``, ``"euler"`` is
    ``DiscreteEuler``. Given an ``objective``, a sampler made for another kind of objective raises a ValueError
    naming the right ones.
    """
    discrete, discrete_objective = _discrete_samplers()
    is_discrete = isinstance(objective, discrete_objective)
    if isinstance(name, Sampler):
        sampler = name
    else:
        key = name.lower() if isinstance(name, str) else name
        if is_discrete and key == "euler":
            key = "discrete_euler"
        table = {**SAMPLERS, "tau_leaping": discrete["tau_leaping"], "discrete_euler": discrete["euler"]}
        sampler = table[check_choice("sampler", key, tuple(table))](**kwargs)
    types = sampler.objective_type if isinstance(sampler.objective_type, tuple) else (sampler.objective_type,)
    if objective is not None and not isinstance(objective, types):
        fitting = {discrete_objective: "tau_leaping or euler (DiscreteEuler)",
                   RectifiedFlow: "euler, heun, dpm_solver or unipc",
                   GaussianDiffusion: "ddpm, ddim, dpm_solver or unipc"}
        wanted = next((names for cls, names in fitting.items() if isinstance(objective, cls)), "one made for it")
        raise ValueError(
            f"The {type(sampler).__name__} sampler samples {' or '.join(t.__name__ for t in types)} models, but this "
            f"model's objective is {type(objective).__name__}; use {wanted}."
        )
    return sampler

"""Samplers: turn noise into data with a model function ``model_fn(x, t)``.

``DDPM`` and ``DDIM`` sample ``GaussianDiffusion`` models; ``Euler`` and ``Heun`` sample ``RectifiedFlow``
models. ``get_sampler("ddim")`` builds one by name.
"""

from keras_dit.diffusion.samplers.base import Sampler, flow_times, spaced_timesteps
from keras_dit.diffusion.samplers.ddim import DDIM
from keras_dit.diffusion.samplers.ddpm import DDPM
from keras_dit.diffusion.samplers.euler import Euler
from keras_dit.diffusion.samplers.heun import Heun
from keras_dit.diffusion.schedules import check_choice

SAMPLERS = {"ddpm": DDPM, "ddim": DDIM, "euler": Euler, "heun": Heun}


def get_sampler(name, **kwargs):
    """A sampler by name (``"ddpm"``, ``"ddim"``, ``"euler"``, ``"heun"``; any case), built with ``kwargs``.

    A ``Sampler`` instance is returned as it is.
    """
    if isinstance(name, Sampler):
        return name
    key = name.lower() if isinstance(name, str) else name
    return SAMPLERS[check_choice("sampler", key, tuple(SAMPLERS))](**kwargs)

"""keras_dit: Diffusion Transformers for Keras 3 (JAX, TensorFlow, PyTorch).

Subpackages mirror the pipeline: ``layers`` -> ``models`` (backbones, KL-VAE) -> ``conditioning`` ->
``diffusion`` (objectives, ``samplers``) -> ``tasks`` (what users ``fit``) -> ``convert`` (checkpoints).
"""

__version__ = "0.1.0"


def _default_backend():
    """Without ``KERAS_BACKEND``, if the backend Keras would use (``~/.keras/keras.json``, else TensorFlow) is
    not installed, use one that is (JAX, TensorFlow, then PyTorch): ``pip install keras-dit[jax]`` just works."""
    import importlib.util
    import json
    import os
    import sys

    if "keras" in sys.modules or os.environ.get("KERAS_BACKEND"):
        return
    config = os.path.join(os.environ.get("KERAS_HOME", os.path.expanduser("~/.keras")), "keras.json")
    try:
        with open(config) as f:
            configured = json.load(f).get("backend") or "tensorflow"
    except (OSError, ValueError):
        configured = "tensorflow"
    if importlib.util.find_spec(configured) is not None:
        return
    for name in ("jax", "tensorflow", "torch"):
        if importlib.util.find_spec(name) is not None:
            os.environ["KERAS_BACKEND"] = name
            return


_default_backend()

from keras_dit import backend

backend.tune_xla_cpu()

from keras_dit import layers
from keras_dit import conditioning
from keras_dit import models
from keras_dit import diffusion
from keras_dit.diffusion import samplers
from keras_dit import losses
from keras_dit import tasks
from keras_dit import data
from keras_dit import metrics
from keras_dit import optimizers
from keras_dit import convert
from keras_dit import distribution
from keras_dit import latent
from keras_dit.latent.scale_factor import compute_scale_factor

"""keras_dit: Diffusion Transformers for Keras 3 (JAX, TensorFlow, PyTorch).

Subpackages mirror the pipeline: ``layers`` -> ``models`` (backbones, KL-VAE) -> ``conditioning`` ->
``diffusion`` (objectives, ``samplers``) -> ``tasks`` (what users ``fit``) -> ``convert`` (checkpoints).
"""

__version__ = "0.1.0"

from keras_dit import backend
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
from keras_dit.scale_factor import compute_scale_factor

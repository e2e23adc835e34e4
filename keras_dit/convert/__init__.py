"""Checkpoint converters: diffusers models and the reference DiT checkpoints into keras_dit models."""

from keras_dit.convert import dit as _dit  # noqa: F401  (registers DiTTransformer2DModel)
from keras_dit.convert import kl_vae as _kl_vae  # noqa: F401  (registers AutoencoderKL)
from keras_dit.convert.diffusers import from_diffusers
from keras_dit.convert.dit import from_dit_checkpoint
from keras_dit.convert.state_dict import StateDictLoader, load_state_dict

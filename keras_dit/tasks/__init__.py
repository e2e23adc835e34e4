"""The keras.Model subclasses users fit: DiffusionModel (and the VAE trainer)."""

from keras_dit.tasks.diffusion_model import DiffusionModel, NaNLossGuard

"""What users fit: the diffusion model and the VAE trainer."""

from keras_dit.tasks.diffusion_model import DiffusionModel, NaNLossGuard
from keras_dit.latent.vae_trainer import VAETrainer, psnr

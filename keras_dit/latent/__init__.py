"""The latent stage of latent diffusion, in pipeline order: the autoencoder (``KLVAE``), its trainer
(``VAETrainer``), the scale factor that normalises its latents (``compute_scale_factor``) and the latent cache
(``write_latent_cache`` / ``read_latent_cache``). Also reachable as ``kd.models.KLVAE``, ``kd.tasks.VAETrainer``,
``kd.compute_scale_factor`` and ``kd.data.read_latent_cache`` / ``write_latent_cache``.
"""

from keras_dit.latent.kl_vae import KLVAE, KLVAE_PRESETS, DiagonalGaussian
from keras_dit.latent.vae_trainer import VAETrainer, psnr

# The cache through keras_dit.data, whose __init__ imports it: importing latent_cache first would enter
# keras_dit.data's __init__ while latent_cache is half-initialised.
from keras_dit.data import LatentDataset, read_latent_cache, write_latent_cache  # noqa: E402
from keras_dit.latent.scale_factor import compute_scale_factor  # noqa: E402

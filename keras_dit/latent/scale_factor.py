"""``compute_scale_factor``: the latent normalisation of latent diffusion, 1 / std of the VAE's latents."""

import keras
import numpy as np

from keras_dit.data.images import check_image_range
from keras_dit.latent.latent_cache import encode_dataset
from keras_dit.validation import check_int


def _first_images(dataset):
    """The images of an array / tuple / dict data set, or of a ``PyDataset``'s first batch; ``None`` for other
    iterables (reading them would consume a batch)."""
    if isinstance(dataset, keras.utils.PyDataset):
        dataset = dataset[0] if len(dataset) else None
    if isinstance(dataset, dict):
        dataset = dataset.get("images")
    elif isinstance(dataset, tuple):
        dataset = dataset[0]
    return dataset if isinstance(dataset, np.ndarray) else None


def compute_scale_factor(vae, dataset, per_channel=False, shift=False, sample=False, batch_size=32,
                         max_batches=None, seed=None, verbose=1, store=True):
    """1 / std of ``vae``'s latents over ``dataset`` (Stable Diffusion's 0.18215 is this on its data).

    Args:
        vae: a ``KLVAE``.
        dataset: images in [-1, 1] (array, tuple / dict of arrays, ``PyDataset``, ``tf.data`` or any iterable
            of batches; labels beside the images are ignored).
        per_channel: one factor per latent channel instead of one for all.
        shift: also measure the latents' mean and store it as ``vae.shift_factor`` (latents are then
            ``(z - shift) * scale``); the std is always taken about the mean.
        sample: use posterior samples (reproducible with ``seed``) instead of posterior means.
        max_batches: stop after this many batches.
        verbose: show a Keras ``Progbar``.
        store: set ``vae.scale_factor`` (and ``vae.shift_factor``) so they are saved with the VAE's config.

    Returns:
        The scale factor: a float, or a list of floats (one per channel) with ``per_channel``.
    """
    check_int("batch_size", batch_size)
    if max_batches is not None:
        check_int("max_batches", max_batches, hint="None reads the whole data set")
    images = _first_images(dataset)
    if images is not None:
        check_image_range(images, "compute_scale_factor's images")
    channels = vae.latent_channels
    count, total, total_sq = 0, np.zeros(channels), np.zeros(channels)
    for latents, _, _ in encode_dataset(vae, dataset, batch_size, sample, seed, max_batches, verbose):
        z = latents.reshape(-1, channels).astype("float64")
        count += len(z)
        total += z.sum(axis=0)
        total_sq += np.square(z).sum(axis=0)
    if count == 0:
        raise ValueError("The data set is empty: cannot measure the latents' standard deviation.")
    if not per_channel:
        count, total, total_sq = count * channels, total.sum(), total_sq.sum()
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - np.square(mean), 0.0))
    if np.any(std == 0):
        raise ValueError(f"The latents have zero standard deviation ({std}); the scale factor 1/std is undefined.")
    scale = (1.0 / std).tolist()
    if store:
        vae.scale_factor = scale
        vae.shift_factor = mean.tolist() if shift else None
    return scale

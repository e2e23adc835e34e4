"""``VAETrainer``: trains a ``KLVAE`` with ``compile()`` / ``fit()`` on reconstruction + KL + perceptual losses."""

import keras
from keras import ops

from keras_dit.backend import build_optimizer_before_fit
from keras_dit.losses.kl import gaussian_kl
from keras_dit.latent.kl_vae import KLVAE
from keras_dit.ema import ema_weights, training_weights_kept
from keras_dit.validation import check_choice, check_nonnegative


def psnr(images, reconstructions):
    """Per-image peak signal-to-noise ratio in dB of images in [-1, 1] (peak-to-peak 2): (B,)."""
    error = ops.square(ops.clip(reconstructions, -1.0, 1.0) - images)
    mse = ops.mean(ops.reshape(error, (ops.shape(error)[0], -1)), axis=-1)
    return 10.0 * ops.log(4.0 / (mse + 1e-10)) / ops.log(10.0)


def _images(data):
    """The images of a batch: the array itself, or the ``"images"`` entry of a dict batch."""
    if isinstance(data, dict):
        if "images" not in data:
            raise ValueError(f"VAETrainer takes images, or dicts with an 'images' entry; got keys {sorted(data)}.")
        return data["images"]
    return data


@keras.saving.register_keras_serializable(package="keras_dit")
class VAETrainer(keras.Model):
    """The training model of a ``KLVAE``: ``fit`` it on images in [-1, 1]; the VAE's weights are what it trains.

    Loss (per image element, as LDM's, so the weights keep their meaning across image sizes):
    ``reconstruction + kl_weight * kl + perceptual_weight * perceptual``, where ``reconstruction`` is the mean
    L1 (or L2) error of the decoded posterior sample, ``kl`` the posterior's KL from N(0, I) summed over the latent
    and divided by the image's element count (so ``kl_weight=1e-6`` is Stable Diffusion's setting), and
    ``perceptual`` the mean ``VGGPerceptualLoss`` distance. Logged: loss, reconstruction, kl, perceptual, psnr.
    Batches are images, ``(images, anything)`` tuples (labels are ignored) or dicts with ``"images"``.

    Args:
        vae: the ``KLVAE`` to train.
        perceptual_weight: weight of the perceptual term (0 skips the VGG).
        kl_weight: weight of the KL term.
        perceptual: a ``kd.losses.VGGPerceptualLoss``; required when ``perceptual_weight > 0``.
        reconstruction: ``"l1"`` or ``"l2"``.
        sample_posterior: decode a posterior sample while training (the VAE objective); ``False`` decodes the
            mean. Evaluation always decodes the mean.

    Call arguments:
        images: (B, H, W, C) in [-1, 1]. Returns a dict with ``"reconstruction"``, ``"mean"``, ``"logvar"``.

    Example:
    >>> trainer = VAETrainer(vae, perceptual_weight=0.1, perceptual=VGGPerceptualLoss(weights=None))
    >>> trainer.compile(optimizer=keras.optimizers.Adam(1e-4))
    >>> trainer.fit(images, batch_size=16, epochs=1)
    """

    def __init__(self, vae, perceptual_weight=1.0, kl_weight=1e-6, perceptual=None, reconstruction="l1",
                 sample_posterior=True, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(vae, KLVAE):
            raise ValueError(f"VAETrainer trains a kd.models.KLVAE, got {type(vae).__name__}.")
        check_choice("reconstruction", reconstruction, ("l1", "l2"))
        perceptual_weight = check_nonnegative("perceptual_weight", perceptual_weight)
        kl_weight = check_nonnegative("kl_weight", kl_weight)
        if perceptual_weight and perceptual is None:
            raise ValueError(
                f"perceptual_weight={perceptual_weight} needs a perceptual loss: pass "
                "perceptual=kd.losses.VGGPerceptualLoss(weights='imagenet' | path | None), or perceptual_weight=0."
            )
        self.vae = vae
        self.perceptual = perceptual
        self.perceptual_weight = float(perceptual_weight)
        self.kl_weight = float(kl_weight)
        self.reconstruction = reconstruction
        self.sample_posterior = sample_posterior
        self.trackers = {name: keras.metrics.Mean(name=name) for name in ("reconstruction", "kl", "perceptual", "psnr")}

    def build(self, input_shape=None):
        self.built = True  # the VAE and the VGG are built when created

    def call(self, images, training=False):
        posterior = self.vae.encode(_images(images), training=training)
        latents = posterior.sample() if training and self.sample_posterior else posterior.mean
        return {"reconstruction": self.vae.decode(latents, training=training), "mean": posterior.mean,
                "logvar": posterior.logvar}

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        images = ops.convert_to_tensor(_images(x), dtype=self.compute_dtype)
        reconstruction = y_pred["reconstruction"]
        error = reconstruction - images
        rec = ops.mean(ops.abs(error)) if self.reconstruction == "l1" else ops.mean(ops.square(error))
        elements = float(images.shape[1] * images.shape[2] * images.shape[3])
        kl = ops.mean(gaussian_kl(y_pred["mean"], y_pred["logvar"])) / elements
        total = rec + self.kl_weight * kl
        perceptual = ops.zeros(())
        if self.perceptual_weight:
            perceptual = ops.mean(self.perceptual(images, reconstruction))
            total = total + self.perceptual_weight * perceptual
        if self.losses:
            total = total + ops.sum(ops.stack(self.losses))
        for name, value in (("reconstruction", rec), ("kl", kl), ("perceptual", perceptual),
                            ("psnr", ops.mean(psnr(images, reconstruction)))):
            self.trackers[name].update_state(value)
        return total

    def fit(self, *args, **kwargs):
        """``keras.Model.fit`` that keeps the VAE's raw training weights at its end (Keras would copy the EMA over
        them, see ``kd.tasks.ema``), so ``fit`` again and resume continue the run exactly."""
        build_optimizer_before_fit(self)
        with training_weights_kept(self):
            return super().fit(*args, **kwargs)

    def evaluate(self, *args, **kwargs):
        """``keras.Model.evaluate`` with the EMA weights, if the optimizer keeps them."""
        with ema_weights(self):
            return super().evaluate(*args, **kwargs)

    def ema_weights(self):
        """Context manager: the EMA weights swapped into the VAE (a no-op without EMA), e.g. to export them:
        ``with trainer.ema_weights(): trainer.vae.save("vae.keras")``."""
        return ema_weights(self)

    def get_config(self):
        return {
            "name": self.name, "trainable": self.trainable,
            "vae": keras.saving.serialize_keras_object(self.vae),
            "perceptual": keras.saving.serialize_keras_object(self.perceptual),
            "perceptual_weight": self.perceptual_weight, "kl_weight": self.kl_weight,
            "reconstruction": self.reconstruction, "sample_posterior": self.sample_posterior,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["vae"] = keras.saving.deserialize_keras_object(config["vae"])
        config["perceptual"] = keras.saving.deserialize_keras_object(config["perceptual"])
        return cls(**config)

"""Latent diffusion end to end: train a tiny VAE on digits, measure its scale factor, cache latents, train a
latent DiT on them and generate decoded images."""

import keras
import numpy as np
import pytest

import keras_dit as kd


@pytest.mark.large
def test_vae_scale_factor_cache_and_latent_dit(tmp_path):
    images, labels = kd.data.digits_arrays(image_size=16, channels=1)
    images, labels = kd.data.to_float(images[:512]), labels[:512]

    vae = kd.models.KLVAE.from_preset("kl-f4-tiny", in_channels=1)
    trainer = kd.tasks.VAETrainer(vae, perceptual_weight=0.0, kl_weight=1e-6)
    trainer.compile(optimizer=keras.optimizers.Adam(2e-3))
    history = trainer.fit(images, batch_size=32, epochs=3, verbose=0).history
    assert history["psnr"][-1] > history["psnr"][0]

    scale = kd.compute_scale_factor(vae, images, verbose=0)
    assert vae.scale_factor == pytest.approx(scale) and 0 < scale < 100
    cache = tmp_path / "latents.npz"
    kd.data.write_latent_cache(vae, (images, labels), cache, verbose=0)
    latents = kd.data.read_latent_cache(cache, vae=vae, batch_size=32, seed=0)
    assert np.std(latents.latents) == pytest.approx(1.0, rel=0.05)  # what the scale factor is for

    latent_size = 16 // 4
    backbone = kd.models.DiT(input_size=latent_size, patch_size=1, in_channels=vae.latent_channels,
                             hidden_size=32, depth=1, num_heads=2, num_classes=10)
    model = kd.tasks.DiffusionModel(backbone, kd.diffusion.RectifiedFlow(), autoencoder=vae, seed=0)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3))
    from_cache = model.fit(latents, epochs=2, verbose=0).history["loss"]
    from_images = model.fit(images, labels, batch_size=32, epochs=1, verbose=0).history["loss"]
    assert np.all(np.isfinite(from_cache + from_images))

    samples = model.generate([1, 7], num_steps=4, guidance_scale=2.0, seed=0)
    assert samples.shape == (2, 16, 16, 1) and samples.dtype == np.uint8
    assert model.generate([1, 7], num_steps=4, return_latents=True, seed=0).shape == (2, latent_size, latent_size, 4)

    with pytest.raises(ValueError, match="backbone takes"):
        model.fit(np.zeros((4, 12, 12, 1), "float32"), np.zeros(4, "int32"), verbose=0)


def test_latents_key_marks_batches_as_encoded():
    """``{"latents": ...}`` batches reach the backbone as they are (no VAE pass, no rescaling), whatever their
    shape; images and latents in one batch, or latents of the wrong shape, are refused."""
    vae = kd.models.KLVAE.from_preset("kl-f4-tiny", in_channels=1, seed=0)
    vae.scale_factor = 0.5

    def model(autoencoder):
        backbone = kd.models.DiT(input_size=4, patch_size=1, in_channels=4, hidden_size=16, depth=1, num_heads=2,
                                 num_classes=3, seed=0)
        return kd.tasks.DiffusionModel(backbone, kd.diffusion.RectifiedFlow(), autoencoder=autoencoder, seed=0)

    latents = np.random.default_rng(0).standard_normal((2, 4, 4, 4)).astype("float32")
    labels = np.array([0, 2], "int32")
    with_vae = model(vae)({"latents": latents, "condition": labels})
    as_pixels = model(None)({"images": latents, "condition": labels})  # no autoencoder, scale 1: taken as is
    np.testing.assert_allclose(keras.ops.convert_to_numpy(with_vae), keras.ops.convert_to_numpy(as_pixels),
                               rtol=1e-6)
    with pytest.raises(ValueError, match="exactly one of 'images'"):
        model(vae)({"images": np.zeros((2, 16, 16, 1)), "latents": latents, "condition": labels})
    with pytest.raises(ValueError, match="backbone takes"):
        model(vae)({"latents": np.zeros((2, 16, 16, 1), "float32"), "condition": labels})


def test_bad_autoencoders_and_factors_are_refused():
    """A VAE whose latents the backbone cannot take, and scale factors that are missing, zero or not finite."""
    def backbone(channels=4):
        return kd.models.DiT(input_size=4, patch_size=1, in_channels=channels, hidden_size=16, depth=1,
                             num_heads=2, num_classes=3, seed=0)

    vae = kd.models.KLVAE.from_preset("kl-f4-tiny", in_channels=1, seed=0)
    flow = kd.diffusion.RectifiedFlow()
    with pytest.raises(ValueError, match="no scale_factor.*compute_scale_factor"):
        kd.tasks.DiffusionModel(backbone(), flow, autoencoder=vae)
    vae.scale_factor = 0.5
    with pytest.raises(ValueError, match="4-channel latents.*in_channels=3.*in_channels=4"):
        kd.tasks.DiffusionModel(backbone(3), flow, autoencoder=vae)
    for bad, message in ((0.0, "nonzero"), (float("nan"), "finite"), ([1.0, 2.0], "4 finite numbers")):
        with pytest.raises(ValueError, match=message):
            kd.tasks.DiffusionModel(backbone(), flow, autoencoder=vae, scale_factor=bad)
    vae.scale_factor = [1.0, 2.0, 3.0, 4.0]  # per channel: accepted
    assert kd.tasks.DiffusionModel(backbone(), flow, autoencoder=vae).latent_factors()[0].shape == (4,)


def test_the_autoencoder_is_frozen():
    """Also a VAE saved with trainable=False, whose loaded sublayers are trainable (on TensorFlow the model's
    ``trainable = False`` was then skipped as unchanged, and EMA swapped untrained averages into the decoder)."""
    vae = kd.models.KLVAE.from_preset("kl-f4-tiny", in_channels=1, seed=0, scale_factor=0.5)
    vae.trainable = False
    loaded = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(vae))
    backbone = kd.models.DiT(input_size=4, patch_size=1, in_channels=4, hidden_size=16, depth=1, num_heads=2, seed=0)
    model = kd.tasks.DiffusionModel(backbone, kd.diffusion.RectifiedFlow(), autoencoder=loaded)
    assert loaded.weights and not any(w.trainable for w in loaded.weights)
    assert len(model.trainable_weights) == len(backbone.trainable_weights)

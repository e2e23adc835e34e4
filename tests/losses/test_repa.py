"""REPA: the alignment loss's value, its frozen encoder and trained projector in ``fit``, grids of other sizes,
U-ViT's extra tokens, the ``.keras`` round trip and bad arguments. The encoder is a tiny test-made patch encoder."""

import keras
import numpy as np
import pytest

import keras_dit as kd
from tests.helpers import assert_close, max_abs_diff, run_serialization_test, to_numpy

IMAGES = np.random.default_rng(0).uniform(-1, 1, (8, 8, 8, 1)).astype("float32")
LABELS = np.arange(8) % 4


def patch_encoder(patch=2, width=6, size=8, seed=0):
    """Images (B, size, size, 1) -> (B, (size / patch)^2, width) patch features, with fixed test-made weights."""
    images = keras.Input((size, size, 1))
    features = keras.layers.Conv2D(width, patch, strides=patch, activation="tanh", name="patchify")(images)
    encoder = keras.Model(images, keras.layers.Reshape((-1, width))(features), name="encoder")
    rng = np.random.default_rng(seed)
    encoder.set_weights([rng.normal(0, 0.5, w.shape).astype("float32") for w in encoder.get_weights()])
    return encoder


def model_with_repa(backbone="dit", encoder=None, block=1):
    config = dict(input_size=8, patch_size=2, in_channels=1, hidden_size=16, depth=3, num_heads=2, num_classes=4)
    network = {"dit": kd.models.DiT, "uvit": kd.models.UViT}[backbone](**config)
    repa = kd.losses.REPA(encoder or patch_encoder(), block=block, projector_hidden_size=12)
    return kd.tasks.DiffusionModel(network, kd.diffusion.RectifiedFlow(), repa=repa, seed=0)


def test_alignment_loss_is_one_minus_the_mean_token_cosine():
    model = model_with_repa()
    repa = model.repa
    tokens = np.random.default_rng(1).standard_normal((8, 16, 16)).astype("float32")
    projected = to_numpy(repa.projector(tokens))
    target = to_numpy(repa.encoder(IMAGES))
    norm_target = np.linalg.norm(target, axis=-1)
    cosine = (projected * target).sum(-1) / np.maximum(np.linalg.norm(projected, axis=-1), 0.1 * norm_target)
    cosine = cosine / norm_target  # the projection's norm floored at 0.1 of the target's (kd cosine_similarity)
    assert_close(repa(tokens, IMAGES), 0.5 * (1 - cosine.mean(-1)), atol=1e-5)


def test_fit_trains_the_projector_and_leaves_the_encoder_frozen():
    model = model_with_repa()
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    encoder_before = [to_numpy(w).copy() for w in model.repa.encoder.weights]
    projector_before = [to_numpy(w).copy() for w in model.repa.projector.weights]
    losses = to_numpy(model((IMAGES, LABELS)))
    assert losses.shape == (8,) and np.all(losses > 0)
    history = model.fit(IMAGES, LABELS, batch_size=4, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert all(max_abs_diff(w, b) == 0 for w, b in zip(model.repa.encoder.weights, encoder_before))
    assert all(max_abs_diff(w, b) > 0 for w, b in zip(model.repa.projector.weights, projector_before))
    assert not model.repa.encoder.trainable


def test_encoder_grid_and_input_size_are_resized_to_the_backbone():
    """A 2 x 2 feature grid from 16 px inputs is aligned with the 4 x 4 patch grid of 8 px images."""
    model = model_with_repa(encoder=patch_encoder(patch=8, size=16))
    features = to_numpy(model.repa.target_features(IMAGES))
    assert features.shape == (8, 16, 6)
    assert np.all(np.isfinite(to_numpy(model((IMAGES, LABELS)))))


def test_uvit_aligns_only_its_patch_tokens():
    model = model_with_repa("uvit", block=0)
    losses = to_numpy(model((IMAGES, LABELS)))
    assert losses.shape == (8,) and np.all(np.isfinite(losses))
    tokens = np.random.default_rng(2).standard_normal((8, 18, 16)).astype("float32")  # time + label + 16 patches
    assert_close(model.repa(tokens, IMAGES), model.repa(tokens[:, 2:], IMAGES), atol=1e-6)


def test_round_trip(tmp_path):
    model = model_with_repa()
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    loaded = run_serialization_test(model, (IMAGES, LABELS), tmp_path, atol=1e-5)
    assert isinstance(loaded.repa, kd.losses.REPA) and loaded.repa.weight == 0.5
    for saved, restored in zip(model.repa.weights, loaded.repa.weights):
        assert_close(restored, saved, atol=0.0, what=saved.path)


def test_errors():
    with pytest.raises(ValueError, match="out of range: .* 3 transformer blocks"):
        model_with_repa(block=3)
    with pytest.raises(ValueError, match="'block_9' is not a block"):
        model_with_repa(block="block_9")
    images = keras.Input((8, 8, 1))
    flat = keras.Model(images, keras.layers.Flatten()(images))
    with pytest.raises(ValueError, match=r"patch features \(B, N, E\)"):
        kd.losses.REPA(flat)
    with pytest.raises(ValueError, match="weight must be a number >= 0"):
        kd.losses.REPA(patch_encoder(), weight=-1.0)
    with pytest.raises(ValueError, match="cached latents"):
        model_with_repa()({"latents": IMAGES, "condition": LABELS})

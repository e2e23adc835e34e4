"""Every backbone with every condition kind learns: conditional samples follow the condition, measured from
their pixels (U-ViT on class labels, DiT on multi-hot tags, ReiMei on parameter vectors)."""

import keras
import numpy as np
import pytest

import keras_dit as kd
from tests.helpers import QUADRANT_CLASSES as CLASSES
from tests.helpers import QUADRANT_SIZE as SIZE
from tests.helpers import predicted_class, quadrant_data

HALVES = ["top", "bottom", "left", "right"]


def train(backbone, images, condition, epochs):
    model = kd.tasks.DiffusionModel(backbone, kd.diffusion.RectifiedFlow(), seed=0)
    model.compile(optimizer=keras.optimizers.AdamW(2e-3, weight_decay=0.0))
    losses = model.fit(images, condition, batch_size=32, epochs=epochs, verbose=0).history["loss"]
    assert losses[-1] < 0.6 * losses[0], losses
    return model


@pytest.mark.large
def test_uvit_follows_class_labels():
    data = kd.data.synthetic(num_images=512, image_size=SIZE, num_classes=4, seed=0)
    images, labels = data.as_numpy()
    backbone = kd.models.UViT(input_size=SIZE, patch_size=2, in_channels=1, hidden_size=64, depth=3, num_heads=4,
                              num_classes=4, seed=1)
    model = train(backbone, images, labels, epochs=20)
    wanted = np.repeat(np.arange(4), 8)
    samples = model.generate(wanted, num_steps=20, guidance_scale=3.0, seed=0)
    accuracy = float(np.mean(kd.data.synthetic_scores(samples).argmax(1) == wanted))
    print(f"U-ViT on labels: class accuracy {accuracy:.3f}")
    assert accuracy >= 0.85  # chance is 0.25; measured 0.906 (jax) and 0.875 (torch) over 32 samples


@pytest.mark.large
def test_dit_follows_tags_and_negative_tags():
    images, labels = quadrant_data()
    tags = np.eye(CLASSES, dtype="float32")[labels]  # one tag per image: which half is bright
    conditioner = kd.conditioning.TagConditioner(HALVES, hidden_size=64, num_layers=1, seed=1)
    backbone = kd.models.DiT(input_size=SIZE, patch_size=2, in_channels=1, hidden_size=64, depth=2, num_heads=4,
                             conditioner=conditioner, seed=1)
    model = train(backbone, images, tags, epochs=15)
    wanted = np.repeat(np.arange(CLASSES), 8)
    samples = model.generate([HALVES[k] for k in wanted], num_steps=20, guidance_scale=2.0, seed=0)
    accuracy = float(np.mean(predicted_class(samples) == wanted))
    print(f"DiT on tags: accuracy {accuracy:.3f}")
    assert accuracy >= 0.9
    # A negative tag steers away from its half: "top" with negative "bottom" keeps the top brighter.
    steered = model.generate(["top"] * 8, negative_condition=["bottom"] * 8, num_steps=20, guidance_scale=3.0,
                             seed=1)
    assert float(np.mean(predicted_class(steered) == 0)) >= 0.9


@pytest.mark.large
def test_reimei_follows_parameter_vectors():
    rng = np.random.default_rng(0)
    params = rng.uniform(-0.8, 0.8, (512, 2)).astype("float32")  # brightness of the top and bottom halves
    images = np.empty((512, SIZE, SIZE, 1), "float32")
    images[:, : SIZE // 2] = params[:, None, None, :1]
    images[:, SIZE // 2:] = params[:, None, None, 1:]
    images += rng.normal(0, 0.05, images.shape).astype("float32")
    backbone = kd.models.ReiMei(input_size=SIZE, patch_size=2, in_channels=1, hidden_size=64, num_heads=4,
                                num_mixer_layers=1, num_double_layers=1, num_single_layers=1, num_experts=4,
                                conditioner={"kind": "parameters", "num_parameters": 2}, seed=1)
    model = train(backbone, images, params, epochs=15)
    wanted = rng.uniform(-0.7, 0.7, (16, 2)).astype("float32")
    samples = model.generate(wanted, num_steps=20, guidance_scale=1.5, seed=0).astype("float32") / 127.5 - 1
    measured = np.stack([samples[:, : SIZE // 2].mean((1, 2, 3)), samples[:, SIZE // 2:].mean((1, 2, 3))], axis=1)
    error = float(np.abs(measured - wanted).mean())
    correlation = float(np.corrcoef(measured.ravel(), wanted.ravel())[0, 1])
    print(f"ReiMei on parameters: mean abs error {error:.3f}, correlation {correlation:.3f}")
    assert error < 0.15 and correlation > 0.9

"""VGGPerceptualLoss: preprocessing, distances, weight sources (file, missing, wrong, no network), freezing."""

import keras
import numpy as np
import pytest

import keras_dit as kd
from tests.helpers import assert_close, to_numpy

LAYERS = ("block1_conv2", "block2_conv2", "block3_conv4")


@pytest.fixture(scope="module")
def loss():
    return kd.losses.VGGPerceptualLoss(weights=None, layers=LAYERS, layer_weights=(1.0, 0.5, 0.25))


def images(batch=2, size=32, channels=3, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (batch, size, size, channels)).astype("float32")


def test_preprocessing_matches_keras_caffe_mode():
    x = images()
    expected = keras.applications.vgg19.preprocess_input((x + 1.0) * 127.5)
    assert_close(kd.losses.vgg_preprocess(x), expected, atol=1e-3, what="VGG preprocessing of [-1, 1] images")


def test_distance(loss):
    x, y = images(seed=0), images(seed=1)
    same, different = to_numpy(loss(x, x)), to_numpy(loss(x, y))
    assert same.shape == different.shape == (2,)
    assert_close(same, np.zeros(2), atol=1e-5)
    assert np.all(different > 1e-3)
    near = to_numpy(loss(x, np.clip(x + 0.01, -1, 1)))
    assert np.all(near < different), "a small change must be closer than an unrelated image"


def test_layer_weights_weigh_layers():
    one = kd.losses.VGGPerceptualLoss(weights=None, layers=LAYERS[:1])
    doubled = kd.losses.VGGPerceptualLoss(weights=None, layers=LAYERS[:1], layer_weights=[2.0])
    doubled.set_weights(one.get_weights())
    x, y = images(seed=0), images(seed=1)
    assert_close(doubled(x, y), 2.0 * to_numpy(one(x, y)), atol=1e-5)


def test_grayscale_is_compared_as_gray_rgb(loss):
    x, y = images(channels=1, seed=0), images(channels=1, seed=1)
    assert_close(loss(x, y), loss(np.repeat(x, 3, -1), np.repeat(y, 3, -1)), atol=1e-5)


def test_local_weights_file_loads(tmp_path):
    vgg = keras.applications.VGG19(include_top=False, weights=None)
    path = tmp_path / "vgg19_notop.weights.h5"
    vgg.save_weights(path)
    loaded = kd.losses.VGGPerceptualLoss(weights=str(path), layers=LAYERS)
    for name in ("block1_conv1", "block3_conv4"):
        np.testing.assert_array_equal(to_numpy(loaded.features.get_layer(name).kernel),
                                      to_numpy(vgg.get_layer(name).kernel))


def test_missing_weights_file():
    with pytest.raises(FileNotFoundError, match="VGG19 weights file '/nonexistent/vgg19.h5' does not exist"):
        kd.losses.VGGPerceptualLoss(weights="/nonexistent/vgg19.h5")


def test_wrong_architecture_file(tmp_path):
    path = tmp_path / "vgg16.weights.h5"
    keras.applications.VGG16(include_top=False, weights=None).save_weights(path)
    with pytest.raises(ValueError, match="does not hold VGG19 weights"):
        kd.losses.VGGPerceptualLoss(weights=str(path))


def test_imagenet_without_network_suggests_a_local_path(monkeypatch):
    from keras.src.utils import file_utils

    def no_network(*args, **kwargs):
        raise Exception("URL fetch failure: [Errno -2] Name or service not known")

    monkeypatch.setattr(file_utils, "get_file", no_network)
    with pytest.raises(FileNotFoundError, match=r"ImageNet VGG19 weights.*needs network.*pass its path"):
        kd.losses.VGGPerceptualLoss(weights="imagenet", layers=LAYERS)


def test_vgg_is_frozen(loss):
    assert loss.trainable_weights == [] and len(loss.non_trainable_weights) > 0


def test_bad_arguments(loss):
    with pytest.raises(ValueError, match="Unknown VGG19 layers"):
        kd.losses.VGGPerceptualLoss(weights=None, layers=("block1_conv9",))
    with pytest.raises(ValueError, match="one weight per layer"):
        kd.losses.VGGPerceptualLoss(weights=None, layers=LAYERS, layer_weights=(1.0,))
    with pytest.raises(ValueError, match="too small for VGG19 layers"):
        loss(images(size=2), images(size=2))
    with pytest.raises(ValueError, match="same shape with 1 or 3 channels"):
        loss(images(), images(size=16))

import numpy as np
import pytest

from keras_dit import data, metrics


def test_real_held_out_digits_score_as_their_class():
    images, labels = data.digits_arrays(16, 3, "test")
    report = metrics.evaluate_digits(images, labels)
    assert report["num_images"] == len(labels) == 360
    assert report["accuracy"] >= 0.9 and report["accuracy"] == pytest.approx(report["classifier_test_accuracy"])
    assert set(report["per_class_accuracy"]) == set(data.DIGIT_NAMES)
    wrong = metrics.evaluate_digits(images, (labels + 1) % 10)
    assert wrong["accuracy"] < 0.2
    noise = np.random.default_rng(0).integers(0, 256, images.shape, dtype=np.uint8)
    assert metrics.evaluate_digits(noise, labels)["frechet_distance"] > 10 * report["frechet_distance"]


def test_float_images_in_minus_one_one_are_accepted():
    images, labels = data.digits_arrays(16, 1, "test")
    as_uint8 = metrics.evaluate_digits(images[:50], labels[:50])
    as_float = metrics.evaluate_digits(data.to_float(images[:50]), labels[:50])
    assert as_uint8["accuracy"] == as_float["accuracy"]


def test_bad_input():
    images, labels = data.digits_arrays(16, 1, "test")
    with pytest.raises(ValueError, match=r"Digit labels must be integers in \[0, 9\]"):
        metrics.evaluate_digits(images[:4], [0, 1, 2, 10])
    with pytest.raises(ValueError, match="N labels"):
        metrics.evaluate_digits(images[:4], labels[:3])
    with pytest.raises(ValueError, match="multiple of 8"):
        metrics.evaluate_digits(np.zeros((2, 12, 12, 1), np.uint8), [0, 1])

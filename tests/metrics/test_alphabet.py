import numpy as np
import pytest

from keras_dit import data, metrics


def test_true_renders_score_perfectly_and_parameter_blind_images_do_not():
    params = data.alphabet_params(40, seed=3)
    truth = data.render_alphabet(params, 32)
    shuffled = truth[np.roll(np.arange(40), 1)]  # real alphabet images, for the wrong vectors
    scores = metrics.evaluate_alphabet(truth, params, baseline=shuffled)
    assert scores["psnr"] == np.inf and scores["background_accuracy"] == 1.0  # the border median is the background
    assert scores["background_error"] < 1.0 and scores["num_images"] == 40
    assert scores["baseline_psnr"] < 20 and scores["baseline_background_accuracy"] < 0.2
    assert scores["psnr_margin"] == np.inf


def test_psnr_follows_the_noise_and_background_accuracy_the_tolerance():
    params = data.alphabet_params(8, seed=0)
    truth = data.render_alphabet(params, 16).astype(np.int32)
    rng = np.random.default_rng(0)
    mild = np.clip(truth + rng.integers(-8, 9, truth.shape), 0, 255).astype(np.uint8)
    strong = np.clip(truth + rng.integers(-64, 65, truth.shape), 0, 255).astype(np.uint8)
    scores = metrics.evaluate_alphabet(mild, params, baseline=strong)
    assert 30 < scores["psnr"] < 40 and scores["baseline_psnr"] < scores["psnr"] - 10
    assert scores["background_accuracy"] == 1.0
    shifted = np.clip(truth + 40, 0, 255).astype(np.uint8)  # every background channel off by up to 40
    wide = metrics.evaluate_alphabet(shifted, params, tolerance=255)
    assert wide["background_accuracy"] == 1.0 and "baseline_psnr" not in wide
    background = np.round(params[:, :3] * 255)
    moved = np.minimum(background + 40, 255) - background > 24  # channels the clip at 255 did not hold back
    narrow = metrics.evaluate_alphabet(shifted, params, tolerance=24)
    assert narrow["background_accuracy"] == pytest.approx(1 - np.mean(np.any(moved, axis=1)))
    assert narrow["background_accuracy"] < 1.0


def test_border_median_reads_the_background_under_a_letter_at_the_edge():
    images = np.zeros((1, 8, 8, 3), np.uint8)
    images[:, :, :] = (10, 20, 30)
    images[0, :3, :3] = 255  # a letter in a corner
    np.testing.assert_array_equal(metrics.border_median(images), [[10, 20, 30]])


@pytest.mark.parametrize("images, params, baseline, match", [
    (np.zeros((2, 16, 16, 3), np.float32), data.alphabet_params(2), None, "uint8"),
    (np.zeros((2, 16, 16, 1), np.uint8), data.alphabet_params(2), None, "square RGB"),
    (np.zeros((3, 16, 16, 3), np.uint8), data.alphabet_params(2), None, "3 images for 2 parameter vectors"),
    (np.zeros((2, 16, 16, 3), np.uint8), np.zeros((2, 26)), None, r"\(N, 27\)"),
    (np.zeros((2, 16, 16, 3), np.uint8), data.alphabet_params(2), np.zeros((2, 8, 8, 3), np.uint8), "same size"),
])
def test_bad_input_is_a_clear_error(images, params, baseline, match):
    with pytest.raises(ValueError, match=match):
        metrics.evaluate_alphabet(images, params, baseline=baseline)
    with pytest.raises(ValueError, match="tolerance"):
        metrics.evaluate_alphabet(np.zeros((2, 16, 16, 3), np.uint8), data.alphabet_params(2), tolerance=-1)

import numpy as np
import pytest

from keras_dit import data


def test_parameters_are_deterministic_and_follow_the_encoding():
    params = data.alphabet_params(200, seed=5)
    np.testing.assert_array_equal(params, data.alphabet_params(200, seed=5))
    assert not np.array_equal(params, data.alphabet_params(200, seed=6))
    assert params.shape == (200, 27) and params.dtype == np.float32
    slots = params[:, 3:].reshape(200, 3, 8)
    used = slots[:, :, 0] >= 0
    counts = used.sum(axis=1)
    assert set(counts) == {1, 2, 3} and np.all(used[:, 0])
    assert np.all(used[:, :-1] >= used[:, 1:]), "used slots come first"
    np.testing.assert_array_equal(slots[~used], np.tile([-1, 0, 0, 0, 0, 0, 0, 0], ((~used).sum(), 1)))
    box, color = slots[used][:, 1:5], slots[used][:, 5:]
    assert 0 <= box.min() and box.max() <= 1 and 0 <= color.min() and color.max() <= 1
    sides = np.concatenate([box[:, 2] - box[:, 0], box[:, 3] - box[:, 1]])
    assert sides.min() >= 0.25 and sides.max() <= 0.5
    codes = slots[used][:, 0] * 25
    np.testing.assert_allclose(codes, np.round(codes), atol=1e-5)  # index / 25
    assert set(np.unique(data.alphabet_params(50, max_letters=1)[:, 11::8])) == {-1}


def test_render_draws_letters_in_their_boxes_on_the_background():
    params = data.alphabet_params(20, seed=1)
    images = data.render_alphabet(params)
    assert images.shape == (20, 64, 64, 3) and images.dtype == np.uint8
    for image, item in zip(images, data.describe_alphabet(params)):
        outside = np.ones((64, 64), bool)
        for letter in item["letters"]:
            x1, y1, x2, y2 = (int(round(v * 64)) for v in letter["box"])
            outside[y1:y2, x1:x2] = False
        assert np.all(image[outside] == item["background"])
        top = item["letters"][-1]  # the last letter is drawn over the others
        x1, y1, x2, y2 = (int(round(v * 64)) for v in top["box"])
        assert np.any(np.all(image[y1:y2, x1:x2] == top["color"], axis=-1)), "the letter's colour appears in its box"
    assert data.render_alphabet(params[:2], image_size=32).shape == (2, 32, 32, 3)


def test_letters_render_differently():
    params = np.zeros((2, 27), np.float32)
    params[:, 11::8] = -1
    params[:, 3:11] = [0, 0.25, 0.25, 0.75, 0.75, 1, 1, 1]  # a white "A" on black
    params[1, 3] = 14 / 25  # an "O"
    a, o = data.render_alphabet(params)
    assert [d["letters"][0]["letter"] for d in data.describe_alphabet(params)] == ["A", "O"]
    assert np.mean(a != o) > 0.05


def test_bad_parameters():
    with pytest.raises(ValueError, match="27 values"):
        data.render_alphabet(np.zeros((2, 26)))
    bad = data.alphabet_params(1)
    bad[0, 3] = 3.0
    with pytest.raises(ValueError, match="Letter codes"):
        data.render_alphabet(bad)
    with pytest.raises(ValueError, match="max_letters"):
        data.alphabet_params(4, max_letters=4)


def test_dataset_yields_images_with_parameter_vectors():
    dataset = data.load_builtin("alphabet", num_images=8, batch_size=4, seed=2)
    images, params = dataset[0]
    assert images.shape == (4, 64, 64, 3) and params.shape == (4, 27)
    assert dataset.param_names == data.PARAM_NAMES and len(data.PARAM_NAMES) == 27
    order = dataset._order[:4]
    np.testing.assert_array_equal(params, data.alphabet_params(8, seed=2)[order])

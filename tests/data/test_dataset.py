"""ArrayDataset / BatchedDataset: batches and their count, uint8 -> [-1, 1], the seeded per-epoch order (and
resuming at an epoch), flips, ``as_numpy``, unconditional sets, and the errors for bad arguments."""

import numpy as np
import pytest

from keras_dit.data.dataset import ArrayDataset

IMAGES = np.arange(10 * 2 * 2 * 1, dtype=np.uint8).reshape(10, 2, 2, 1) * 2  # image i holds 8 i ... 8 i + 6
LABELS = np.arange(10) % 3


def first_pixels(batch):
    """Which images a batch holds: image i's first pixel is 8 i, i.e. 8 i / 127.5 - 1 after conversion."""
    return np.rint((batch[:, 0, 0, 0] + 1.0) * 127.5 / 8).astype(int)


def test_batches_convert_images_and_carry_their_labels():
    data = ArrayDataset(IMAGES, LABELS, "labels", batch_size=4, shuffle=False)
    assert len(data) == 2 and len(ArrayDataset(IMAGES, batch_size=4, drop_remainder=False)) == 3
    images, labels = data[1]
    assert images.dtype == np.float32 and images.shape == (4, 2, 2, 1)
    np.testing.assert_allclose(images, IMAGES[4:8] / 127.5 - 1.0, atol=1e-6)
    assert labels.dtype == np.int32 and labels.tolist() == LABELS[4:8].tolist()
    with pytest.raises(IndexError, match="Batch index 2 out of range for 2 batches"):
        data[2]


def test_order_is_seeded_per_epoch_and_resumable():
    def epoch_orders(data, epochs=3):
        orders = []
        for _ in range(epochs):
            orders.append(np.concatenate([first_pixels(data[i][0]) for i in range(len(data))]))
            data.on_epoch_end()
        return orders

    orders = epoch_orders(ArrayDataset(IMAGES, LABELS, "labels", batch_size=5, seed=7))
    assert all(sorted(order) == list(range(10)) for order in orders), "an epoch is a permutation"
    assert not np.array_equal(orders[0], orders[1]), "each epoch draws a new order"
    again = epoch_orders(ArrayDataset(IMAGES, LABELS, "labels", batch_size=5, seed=7))
    assert all(np.array_equal(a, b) for a, b in zip(orders, again)), "the same seed gives the same batches"
    resumed = ArrayDataset(IMAGES, LABELS, "labels", batch_size=5, seed=7)
    resumed.set_epoch(2)
    np.testing.assert_array_equal(epoch_orders(resumed, 1)[0], orders[2])
    other = epoch_orders(ArrayDataset(IMAGES, LABELS, "labels", batch_size=5, seed=8), 1)[0]
    assert not np.array_equal(other, orders[0])
    labels = ArrayDataset(IMAGES, LABELS, "labels", batch_size=5, seed=7)[0][1]
    np.testing.assert_array_equal(labels, LABELS[orders[0][:5]])  # labels follow their images


def test_flip_mirrors_about_half_the_images_reproducibly():
    images = np.random.default_rng(0).uniform(-1, 1, (64, 2, 3, 1)).astype("float32")
    batch = ArrayDataset(images, flip=True, batch_size=64, shuffle=False)[0]
    mirrored = [np.array_equal(b, i[:, ::-1]) for b, i in zip(batch, images)]
    kept = [np.array_equal(b, i) for b, i in zip(batch, images)]
    assert all(m or k for m, k in zip(mirrored, kept)) and 16 < sum(mirrored) < 48
    np.testing.assert_array_equal(ArrayDataset(images, flip=True, batch_size=64, shuffle=False)[0], batch)


def test_as_numpy_and_unconditional_sets():
    images, labels = ArrayDataset(IMAGES, LABELS, "labels", batch_size=4).as_numpy()  # stored order, all 10
    assert first_pixels(images).tolist() == list(range(10)) and labels.tolist() == LABELS.tolist()
    plain = ArrayDataset(IMAGES, batch_size=4, shuffle=False)
    assert isinstance(plain[0], np.ndarray) and plain.as_numpy().shape == (10, 2, 2, 1)
    tags = ArrayDataset(IMAGES, np.eye(10)[:, :4], "tags", tag_vocabulary="abcd", batch_size=4)
    assert tags[0][1].dtype == np.float32 and tags.tag_vocabulary == ["a", "b", "c", "d"]


@pytest.mark.parametrize("kwargs, match", [
    ({"batch_size": 0}, "batch_size must be an integer >= 1, got 0"),
    ({"batch_size": 11}, "larger than the data set \\(10 examples\\)"),
    ({"condition": LABELS}, "condition_kind must be one of"),
    ({"condition": LABELS, "condition_kind": "class"}, "condition_kind must be one of"),
    ({"condition": LABELS[:9], "condition_kind": "labels"}, "condition has 9 rows but there are 10 images"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ArrayDataset(IMAGES, **kwargs)
    with pytest.raises(ValueError, match=r"images must be \(N, H, W, C\)"):
        ArrayDataset(IMAGES[..., 0])

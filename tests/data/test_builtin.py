import numpy as np
import pytest

from keras_dit import data


def test_digits_sizes_channels_labels_and_splits():
    digits = data.load_builtin("digits", image_size=16, channels=3, batch_size=64)
    images, labels = digits[0]
    assert images.shape == (64, 16, 16, 3) and images.dtype == np.float32 and labels.dtype == np.int32
    assert -1 <= images.min() and images.max() <= 1 and set(np.unique(labels)) <= set(range(10))
    assert digits.class_names[7] == "seven" and digits.num_examples == 1797
    train, test = data.digits_arrays(32, 1, "train"), data.digits_arrays(32, 1, "test")
    assert len(train[0]) + len(test[0]) == 1797 and train[0].shape[1:] == (32, 32, 1)
    assert not {x.tobytes() for x in train[0]} & {x.tobytes() for x in test[0]}


def test_digits_upsampling_keeps_the_8x8_content():
    from sklearn.datasets import load_digits

    images, labels = data.digits_arrays(32, 1, "all")
    original = load_digits()
    np.testing.assert_array_equal(labels, original.target)
    down = images[..., 0].reshape(-1, 8, 4, 8, 4).mean(axis=(2, 4)) / 255 * 16
    error = np.mean(np.abs(down - original.images))  # the round trip only blurs ...
    shifted = np.mean(np.abs(down - np.roll(original.images, 1, axis=2)))  # ... it does not move the strokes
    assert error < 0.5 * shifted and np.corrcoef(down.ravel(), original.images.ravel())[0, 1] > 0.95


def test_digits_bad_options():
    with pytest.raises(ValueError, match="multiple of 8"):
        data.digits(image_size=20)
    with pytest.raises(ValueError, match="subset"):
        data.digits(subset="validation")


def test_synthetic_classes_are_told_apart_by_their_scores():
    dataset = data.synthetic(num_images=64, image_size=8, num_classes=4, channels=3, seed=3)
    images, labels = dataset.as_numpy()
    assert dataset.class_names == ["bright", "dark", "horizontal", "vertical"]
    assert images.shape == (64, 8, 8, 3) and np.bincount(labels).tolist() == [16] * 4
    scores = data.synthetic_scores(images)
    assert scores.shape == (64, 4)
    np.testing.assert_array_equal(scores.argmax(axis=1), labels)
    np.testing.assert_array_equal(data.synthetic_scores(dataset.images).argmax(axis=1), labels)  # uint8 input
    # A transposed image swaps horizontal and vertical stripes.
    swapped = data.synthetic_scores(np.transpose(images, (0, 2, 1, 3))).argmax(axis=1)
    np.testing.assert_array_equal(swapped, np.array([0, 1, 3, 2])[labels])
    two = data.synthetic(num_images=10, image_size=16, num_classes=2, batch_size=5)
    assert two.class_names == ["bright", "dark"] and data.synthetic_scores(two.images, 2).shape == (10, 2)


def test_array_dataset_order_and_flip_are_seeded():
    images = np.arange(10 * 4 * 4, dtype=np.uint8).reshape(10, 4, 4, 1)
    make = lambda seed: data.ArrayDataset(images, np.arange(10), "labels", batch_size=5, seed=seed, flip=True)
    a, b = make(0), make(0)
    xa, ya = a[0]
    xb, yb = b[0]
    np.testing.assert_array_equal(xa, xb)
    np.testing.assert_array_equal(ya, yb)
    for x, label in zip(xa, ya):  # each image is its own label's image, mirrored or not
        original = data.to_float(images[label])
        assert np.array_equal(x, original) or np.array_equal(x, original[:, ::-1])
    a.on_epoch_end()
    assert not np.array_equal(a[0][1], ya) or not np.array_equal(a[1][1], b[1][1])
    unconditional = data.ArrayDataset(images, batch_size=4, drop_remainder=False)
    assert len(unconditional) == 3 and unconditional[2].shape == (2, 4, 4, 1)


def test_array_dataset_bad_input():
    images = np.zeros((4, 2, 2, 1), np.uint8)
    with pytest.raises(ValueError, match="condition_kind"):
        data.ArrayDataset(images, np.zeros(4))
    with pytest.raises(ValueError, match="3 rows"):
        data.ArrayDataset(images, np.zeros(3), "labels", batch_size=2)
    with pytest.raises(ValueError, match="batch_size"):
        data.ArrayDataset(images, batch_size=0)


def test_load_builtin_names_valid_choices():
    assert isinstance(data.load_builtin("synthetic", num_images=8, batch_size=4), data.ArrayDataset)
    with pytest.raises(ValueError, match=r"'alphabet', 'digits', 'synthetic'"):
        data.load_builtin("mnist")
    with pytest.raises(ValueError, match="Did you mean 'image_size'"):
        data.load_builtin("digits", imagesize=16)


def test_load_dataset_opens_folders_and_built_ins(tmp_path):
    from PIL import Image

    for name in ("a.png", "b.png"):
        Image.new("RGB", (8, 8)).save(tmp_path / name)
    folder = data.load_dataset(directory=str(tmp_path), image_size=4, batch_size=2)
    assert isinstance(folder, data.ImageFolder) and folder[0].shape == (2, 4, 4, 3)
    assert data.load_dataset(builtin="synthetic", num_images=4, batch_size=2).class_names[0] == "bright"
    with pytest.raises(ValueError, match="exactly one"):
        data.load_dataset(directory=str(tmp_path), builtin="digits")
    with pytest.raises(ValueError, match="Did you mean 'batch_size'"):
        data.load_dataset(directory=str(tmp_path), image_size=4, batchsize=2)

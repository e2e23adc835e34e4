import os
import pickle
import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest
from PIL import Image

from keras_dit.data import ImageFolder, list_images
from tests.helpers import BACKEND

# file -> gray level of its flat 12 x 16 image; the level identifies the image inside a batch.
LEVELS = {
    "cat/a.png": 10, "cat/b.jpg": 60, "cat/c.webp": 110, "dog/d.bmp": 160, "dog/e.png": 200, "dog/more/f.png": 240,
}


@pytest.fixture
def folder(tmp_path):
    for name, level in LEVELS.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name == "dog/e.png":
            image = Image.new("L", (16, 12), level)  # grayscale file
        elif name == "dog/more/f.png":
            image = Image.new("RGBA", (16, 12), (level, level, level, 255))
        else:
            image = Image.new("RGB", (16, 12), (level, level, level))
        image.save(path, **({"lossless": True} if name.endswith(".webp") else {}))
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / ".cache").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / ".cache" / "hidden.png")
    return tmp_path


def _levels(images):
    """The gray level (0-255) of each flat image in a batch."""
    return (images.mean(axis=(1, 2, 3)) + 1) * 127.5


def test_lists_images_recursively_skipping_hidden_and_other_files(folder):
    assert list_images(folder) == sorted(LEVELS)


def test_labels_from_sub_folders(folder):
    data = ImageFolder(folder, 8, condition="labels", batch_size=4, shuffle=False, drop_remainder=False)
    assert data.class_names == ["cat", "dog"] and len(data) == 2
    images, labels = data.as_numpy()
    assert images.shape == (6, 8, 8, 3) and images.dtype == np.float32 and labels.dtype == np.int32
    np.testing.assert_array_equal(labels, [0, 0, 0, 1, 1, 1])
    np.testing.assert_allclose(_levels(images), [LEVELS[f] for f in data.files], atol=2)
    assert data.image_shape == (8, 8, 3)
    assert ImageFolder(folder, (8, 4), channels=1, batch_size=2)[0].shape == (2, 8, 4, 1)


def test_unconditional_batches_are_images_only(folder):
    batch = ImageFolder(folder, 8, batch_size=4)[0]
    assert isinstance(batch, np.ndarray) and batch.shape == (4, 8, 8, 3)
    assert -1 <= batch.min() and batch.max() <= 1


def _params_file(folder):
    path = folder / "params.csv"
    path.write_text("file,level,half\n" + "".join(f"{f},{v},{v / 2}\n" for f, v in LEVELS.items()))
    return path


def test_shuffle_is_deterministic_by_seed_and_changes_per_epoch(folder):
    make = lambda seed: ImageFolder(folder, 8, condition="params", params_file=_params_file(folder), batch_size=3,
                                    seed=seed)
    a, b = make(1), make(1)
    orders = []
    for _ in range(3):
        for i in range(len(a)):
            (xa, pa), (xb, pb) = a[i], b[i]
            np.testing.assert_array_equal(xa, xb)
            np.testing.assert_allclose(_levels(xa), pa[:, 0], atol=2)  # each image keeps its own parameters
        orders.append(tuple(a._order))
        a.on_epoch_end(), b.on_epoch_end()
    assert len(set(orders)) > 1, "the order should change between epochs"
    assert tuple(make(2).order(0)) != orders[0] or tuple(make(3).order(0)) != orders[0]
    assert a.param_names == ["level", "half"]


def test_params_npz_and_unlisted_images(folder):
    path = folder / "params.npz"
    np.savez(path, files=np.array(["a.png", "dog/e.png"]), params=np.array([[1.0, 2.0], [3.0, 4.0]]))
    with pytest.warns(UserWarning, match="4 image.*not listed"):
        data = ImageFolder(folder, 8, condition="params", params_file=path, batch_size=2, shuffle=False)
    assert data.files == ["cat/a.png", "dog/e.png"]  # "a.png" found by its unambiguous base name
    np.testing.assert_array_equal(data[0][1], [[1, 2], [3, 4]])


def test_params_of_inconsistent_length(folder):
    path = folder / "params.csv"
    path.write_text("cat/a.png,1,2\ncat/b.jpg,1\n")
    with pytest.raises(ValueError, match="same length"):
        ImageFolder(folder, 8, condition="params", params_file=path)


def test_csv_naming_an_unknown_file_is_an_error(folder):
    path = folder / "tags.csv"
    path.write_text("file,tags\ncat/a.png,smile\ncat/missing.png,hat\n")
    with pytest.raises(ValueError, match="missing.png"):
        ImageFolder(folder, 8, condition="tags", tags_file=path)


def test_tags_from_sidecar_files(folder):
    (folder / "cat" / "a.txt").write_text("smile, hat")
    (folder / "dog" / "more" / "f.txt").write_text("smile\n")
    data = ImageFolder(folder, 8, condition="tags", batch_size=6, shuffle=False)
    assert data.tag_vocabulary == ["smile", "hat"]  # by frequency
    images, tags = data[0]
    assert tags.dtype == np.float32 and tags.shape == (6, 2)
    expected = {"cat/a.png": [1, 1], "dog/more/f.png": [1, 0]}
    np.testing.assert_array_equal(tags, [expected.get(f, [0, 0]) for f in data.files])


def test_tags_csv_with_given_vocabulary(folder):
    path = folder / "tags.csv"
    path.write_text('file,tags\ncat/b.jpg,"hat, scarf"\ndog/d.bmp,"smile"\n')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = ImageFolder(folder, 8, condition="tags", tags_file=path, tag_vocabulary=["smile", "hat"],
                           batch_size=2, shuffle=False)
    messages = " ".join(str(w.message) for w in caught)
    assert "scarf" in messages and "4 image(s)" in messages
    np.testing.assert_array_equal(data[0][1], [[0, 1], [1, 0]])


def test_corrupt_image_is_skipped_with_warnings(folder):
    (folder / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not a png")
    data = ImageFolder(folder, 8, condition="labels", batch_size=7, shuffle=False)
    with pytest.warns(UserWarning, match="broken.png"):
        images, labels = data[0]
    assert images.shape == (7, 8, 8, 3) and np.all(np.isfinite(images))  # its slot is filled by the next image
    assert "cat/broken.png" in data.unreadable
    with pytest.warns(UserWarning, match="1 unreadable image"):
        data.on_epoch_end()


def test_pickles_for_multiprocessing_workers(folder):
    data = ImageFolder(folder, 8, condition="labels", batch_size=3, seed=4)
    clone = pickle.loads(pickle.dumps(data))
    for got, expected in zip(clone[1], data[1]):
        np.testing.assert_array_equal(got, expected)


def test_bad_folders_and_options(tmp_path, folder):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ImageFolder(tmp_path / "nowhere", 8)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no images here")
    with pytest.raises(ValueError, match="holds no images"):
        ImageFolder(tmp_path / "empty", 8)
    Image.new("RGB", (4, 4)).save(folder / "top.png")
    with pytest.raises(ValueError, match="top.png"):
        ImageFolder(folder, 8, condition="labels")
    with pytest.raises(ValueError, match="crop"):
        ImageFolder(folder, 8, crop="middle")
    with pytest.raises(ValueError, match="params_file"):
        ImageFolder(folder, 8, condition="params")
    with pytest.raises(ValueError, match="batch_size 64"):
        ImageFolder(folder, 8, batch_size=64)


def test_fit_on_the_backend_with_worker_threads(folder):
    data = ImageFolder(folder, 8, condition="labels", batch_size=2, crop="random", flip=True, workers=2)
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(2)])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(data, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2 and np.all(np.isfinite(history.history["loss"]))
    assert data.epoch >= 2  # the order advanced every epoch


@pytest.mark.large  # a fresh interpreter imports the backend and keras_dit
@pytest.mark.skipif(BACKEND == "tensorflow", reason="checks that the other backends do not need TensorFlow")
def test_feeding_fit_does_not_import_tensorflow(folder):
    script = (
        "import sys, keras, keras_dit as kd\n"
        f"data = kd.data.ImageFolder({str(folder)!r}, 8, condition='labels', batch_size=2, workers=2)\n"
        "model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(2)])\n"
        "model.compile('sgd', keras.losses.SparseCategoricalCrossentropy(from_logits=True))\n"
        "model.fit(data, epochs=1, verbose=0)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'tensorflow'))\n"
    )
    env = {**os.environ, "KERAS_BACKEND": BACKEND}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300,
                            cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout

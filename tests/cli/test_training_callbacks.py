"""Atomic checkpoints, the sample grid and the Pillow loss curve."""

import os

import keras
import numpy as np
import pytest
from PIL import Image

from keras_dit.training_callbacks import atomic_save, image_grid, plot_loss_curve, read_csv_log


def small_model(value):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.set_weights([np.full((3, 2), value, "float32"), np.zeros(2, "float32")])
    return model


def test_kill_during_checkpoint_write_keeps_the_previous_one(tmp_path, monkeypatch):
    path = tmp_path / "model.keras"
    atomic_save(small_model(1.0), path)
    before = path.read_bytes()

    model = small_model(2.0)
    real_save = keras.Model.save

    def dying_save(self, filepath, *args, **kwargs):
        real_save(self, filepath, *args, **kwargs)
        with open(filepath, "r+b") as f:  # half written ...
            f.truncate(os.path.getsize(filepath) // 2)
        raise KeyboardInterrupt("killed while writing")  # ... then the process is interrupted

    monkeypatch.setattr(keras.Model, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        atomic_save(model, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.keras"]  # no temporary file left behind
    np.testing.assert_array_equal(keras.saving.load_model(path).get_weights()[0], np.ones((3, 2)))
    atomic_save(model, path)  # a completed write replaces it
    np.testing.assert_array_equal(keras.saving.load_model(path).get_weights()[0], np.full((3, 2), 2.0))


def test_image_grid_layout_and_captions():
    images = np.zeros((6, 8, 8, 1), "uint8")
    images[1] = 255
    grid = image_grid(images, captions=[f"c{i}" for i in range(6)], columns=3, cell=32)
    assert grid.size == (3 * 34 + 2, 2 * (32 + 14 + 2) + 2)
    pixels = np.asarray(grid)
    assert pixels[2 + 16, 2 + 34 + 16].tolist() == [255, 255, 255]  # image 1 is white, scaled x4
    assert pixels[2 + 16, 2 + 16].tolist() == [0, 0, 0]
    assert (pixels[2 + 32:2 + 46, 2:34] < 128).any()  # a caption is drawn under image 0


def test_loss_curve_from_csv_log(tmp_path):
    log = tmp_path / "log.csv"
    log.write_text("epoch,loss\n0,1.0\n1,0.5\n2,0.25\n")
    epochs, losses = read_csv_log(log)
    assert epochs == [1, 2, 3] and losses == [1.0, 0.5, 0.25]
    path = plot_loss_curve(epochs, losses, tmp_path / "loss.png", size=(320, 200))
    image = np.asarray(Image.open(path).convert("RGB"))
    assert image.shape == (200, 320, 3)
    blue = (image[..., 2] > 150) & (image[..., 0] < 100)
    cols = np.flatnonzero(blue.any(axis=0))
    # the line falls from the top left to the bottom right
    assert np.flatnonzero(blue[:, cols[0]]).mean() < np.flatnonzero(blue[:, cols[-1]]).mean()
    with pytest.raises(ValueError, match="No loss values"):
        plot_loss_curve([], [], tmp_path / "empty.png")


def test_checkpoint_every_steps_saves_mid_epoch_with_the_finished_epochs_logged(tmp_path, monkeypatch):
    """every=2 epochs and every_steps=3 on 2-step epochs: saves at steps 3 (mid epoch 2), 4 (epoch 2's end), 6 (step
    and epoch end at once: one save) and 8; each with the log of the finished epochs only."""
    import keras_dit.training_callbacks as callbacks

    saves = []

    def recorded(model, path):
        rows = callbacks._read_csv(tmp_path / "log.csv")
        saves.append((int(keras.ops.convert_to_numpy(model.optimizer.iterations)), [r["epoch"] for r in rows]))

    monkeypatch.setattr(callbacks, "atomic_save", recorded)
    model = small_model(1.0)
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.ones((8, 3), "float32"), np.zeros((8, 2), "float32")
    checkpoint = callbacks.AtomicCheckpoint(tmp_path / "m.keras", every=2, log=tmp_path / "log.csv", every_steps=3)
    model.fit(x, y, batch_size=4, epochs=4, verbose=0, callbacks=[checkpoint])
    assert saves == [(3, ["0"]), (4, ["0", "1"]), (6, ["0", "1", "2"]), (8, ["0", "1", "2", "3"])]
    assert not os.path.exists(tmp_path / "log.partial.json")  # removed by the last epoch-end checkpoint
    with pytest.raises(ValueError, match="every_steps must be an integer >= 0, got -1"):
        callbacks.AtomicCheckpoint(tmp_path / "m.keras", every_steps=-1)

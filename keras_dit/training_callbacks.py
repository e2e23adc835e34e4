"""Training callbacks of the command line (usable from Python too): atomic ``.keras`` checkpoints, a labelled
sample grid every N epochs, and the loss curve drawn with Pillow (no matplotlib needed).
"""

import csv
import os
import tempfile

import keras
import numpy as np
from PIL import Image, ImageDraw, ImageFont


def atomic_save(model, path):
    """``model.save(path)`` that never leaves a partial file at ``path``.

    The model is written to a temporary file in the same folder, then moved over ``path`` with ``os.replace``
    (atomic on POSIX and Windows), so a run killed mid-write keeps the previous checkpoint intact.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".keras", dir=folder)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the checkpoint a normal file's permissions
    try:
        model.save(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


class AtomicCheckpoint(keras.callbacks.Callback):
    """Saves the whole model (weights, optimizer and EMA state, seed states) every ``every`` epochs and at the
    end of training, with ``atomic_save``. ``optimizer.iterations`` in the file tells a resumed run its epoch."""

    def __init__(self, path, every=1):
        super().__init__()
        self.path = os.fspath(path)
        self.every = max(int(every), 1)
        self._pending = False  # an epoch finished since the last save

    def on_epoch_end(self, epoch, logs=None):
        self._pending = (epoch + 1) % self.every != 0
        if not self._pending:
            atomic_save(self.model, self.path)

    def on_train_end(self, logs=None):
        if self._pending:
            atomic_save(self.model, self.path)
            self._pending = False


def _font(size):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap size
        return ImageFont.load_default()


def image_grid(images, captions=None, columns=None, cell=64):
    """uint8 (N, H, W, C) images -> a grid ``PIL.Image``, each image scaled up (nearest) to ``cell`` px and
    captioned below with ``captions[i]`` when given."""
    images = np.asarray(images)
    n = len(images)
    columns = columns or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / columns))
    scale = max(1, cell // max(images.shape[1:3]))
    h, w = images.shape[1] * scale, images.shape[2] * scale
    caption_h = 14 if captions is not None else 0
    grid = Image.new("RGB", (columns * (w + 2) + 2, rows * (h + caption_h + 2) + 2), (255, 255, 255))
    draw = ImageDraw.Draw(grid)
    font = _font(11)
    for i, image in enumerate(images):
        tile = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).convert("RGB")
        tile = tile.resize((w, h), Image.NEAREST)
        x, y = 2 + (i % columns) * (w + 2), 2 + (i // columns) * (h + caption_h + 2)
        grid.paste(tile, (x, y))
        if captions is not None:
            draw.text((x + 1, y + h), str(captions[i])[: max(4, w // 6)], fill=(0, 0, 0), font=font)
    return grid


class SampleGrid(keras.callbacks.Callback):
    """Every ``every`` epochs, generates one image per entry of ``conditions`` and saves a captioned grid PNG
    ``<folder>/epoch_<NNN>.png`` (the same seed each time, so grids compare across epochs).

    Args:
        folder: where the grids go.
        conditions: what ``model.generate`` takes (labels, tags, params), or ``None`` for unconditional models.
        captions: one caption per image (e.g. class names).
        every: epochs between grids (0 disables).
        num_images: how many images an unconditional model draws.
        generate_kwargs: ``num_steps``, ``guidance_scale``, ``sampler`` ... for ``generate``.
    """

    def __init__(self, folder, conditions=None, captions=None, every=5, num_images=16, **generate_kwargs):
        super().__init__()
        self.folder = os.fspath(folder)
        self.conditions = conditions
        self.captions = captions
        self.every = int(every)
        self.num_images = num_images
        self.generate_kwargs = generate_kwargs
        self.paths = []

    def on_epoch_end(self, epoch, logs=None):
        if self.every <= 0 or (epoch + 1) % self.every:
            return
        what = {"num_images": self.num_images} if self.conditions is None else {"condition": self.conditions}
        images = self.model.generate(seed=0, **what, **self.generate_kwargs)
        os.makedirs(self.folder, exist_ok=True)
        path = os.path.join(self.folder, f"epoch_{epoch + 1:03d}.png")
        image_grid(images, self.captions, columns=min(len(images), 10)).save(path)
        self.paths.append(path)


def read_csv_log(path):
    """The per-epoch ``loss`` values of a Keras ``CSVLogger`` file, as ``(epochs, losses)`` lists."""
    epochs, losses = [], []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row.get("loss") not in (None, ""):
                epochs.append(int(row["epoch"]) + 1)
                losses.append(float(row["loss"]))
    return epochs, losses


def plot_loss_curve(epochs, losses, path, title="training loss", size=(640, 400)):
    """Draw ``losses`` against ``epochs`` as a line chart PNG with Pillow (log-free, axes labelled)."""
    if not losses:
        raise ValueError("No loss values to plot; train for at least one epoch first.")
    width, height = size
    left, right, top, bottom = 70, 20, 30, 45
    image = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(image)
    font = _font(12)
    low, high = min(losses), max(losses)
    if high == low:
        low, high = low - 0.5, high + 0.5
    first, last = epochs[0], max(epochs[-1], epochs[0] + 1)

    def point(epoch, loss):
        x = left + (epoch - first) / (last - first) * (width - left - right)
        y = top + (high - loss) / (high - low) * (height - top - bottom)
        return x, y

    draw.rectangle([left, top, width - right, height - bottom], outline=(0, 0, 0))
    for i in range(5):
        value = low + (high - low) * i / 4
        _, y = point(first, value)
        draw.line([left - 4, y, left, y], fill=(0, 0, 0))
        draw.text((4, y - 7), f"{value:.4g}", fill=(0, 0, 0), font=font)
    for epoch in sorted({first, last, (first + last) // 2}):
        x, _ = point(epoch, low)
        draw.line([x, height - bottom, x, height - bottom + 4], fill=(0, 0, 0))
        draw.text((x - 6, height - bottom + 6), str(epoch), fill=(0, 0, 0), font=font)
    draw.text((width // 2 - 20, height - 18), "epoch", fill=(0, 0, 0), font=font)
    draw.text((left, 8), title, fill=(0, 0, 0), font=font)
    points = [point(e, l) for e, l in zip(epochs, losses)]
    if len(points) > 1:
        draw.line(points, fill=(31, 119, 180), width=2)
    for x, y in points:
        draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=(31, 119, 180))
    image.save(path)
    return path


class LossCurve(keras.callbacks.Callback):
    """At the end of training, draws the loss of every epoch logged in ``csv_path`` (a ``CSVLogger`` file, so
    a resumed run's curve includes the epochs before the interruption) to ``path``."""

    def __init__(self, csv_path, path):
        super().__init__()
        self.csv_path = os.fspath(csv_path)
        self.path = os.fspath(path)

    def on_train_end(self, logs=None):
        if os.path.isfile(self.csv_path):
            epochs, losses = read_csv_log(self.csv_path)
            if losses:
                plot_loss_curve(epochs, losses, self.path)

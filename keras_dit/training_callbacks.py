"""Training callbacks of the command line (usable from Python too): atomic ``.keras`` checkpoints with the CSV
log written alongside, a labelled sample grid every N epochs and at the end, the loss curve drawn with Pillow (no
matplotlib needed), and Ctrl-C that stops training on every backend.
"""

import contextlib
import csv
import glob
import json
import os
import signal
import tempfile
import threading

import keras
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from keras_dit.validation import check_int


def _atomic_write(path, write, suffix):
    """Call ``write(tmp)`` on a temporary file beside ``path``, then move it over ``path`` with ``os.replace``
    (atomic on POSIX and Windows): an interrupted write never leaves a partial file at ``path``."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=folder)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file a normal file's permissions
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_save(model, path):
    """``model.save(path)`` that never leaves a partial file at ``path``: a run killed mid-write keeps the
    previous checkpoint intact (see ``_atomic_write``)."""
    _atomic_write(path, model.save, ".keras")


def remove_stale_temporaries(folder):
    """Delete the ``.tmp-*`` files (checkpoint, log) that ``_atomic_write`` left in ``folder`` when a process was
    killed while writing; returns their paths. Call it only when no other process writes checkpoints there."""
    stale = [path for suffix in (".keras", ".csv", ".json")
             for path in glob.glob(os.path.join(os.fspath(folder), f".tmp-*{suffix}"))]
    for path in stale:
        os.remove(path)
    return stale


def _write_csv(path, rows):
    """``rows`` (dicts with ``epoch``) as a ``CSVLogger``-style file, written atomically."""
    keys = sorted({key for row in rows for key in row} - {"epoch"})

    def write(tmp):
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, ["epoch", *keys])
            writer.writeheader()
            writer.writerows(rows)

    _atomic_write(path, write, ".csv")


def _write_json(path, value):
    with open(path, "w") as f:
        json.dump(value, f)


def _read_json(path):
    if not os.path.isfile(path):
        return {}
    with open(path) as f:
        return json.load(f)


def _read_csv(path):
    if not os.path.isfile(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


class AtomicCheckpoint(keras.callbacks.Callback):
    """Saves the whole model (weights, optimizer and EMA state, seed states) every ``every`` epochs, with
    ``every_steps``: also every that many optimizer steps (mid-epoch too), and at the end of training, with
    ``atomic_save``. ``optimizer.iterations`` in the file tells a resumed run its epoch and batch.

    With ``log`` (a CSV path), the per-epoch logs of the finished epochs are written there (``CSVLogger``'s format)
    together with each checkpoint, just before it, so the log always agrees with the checkpoint: a killed run
    loses the rows of the epochs it loses, and a resumed run first drops the rows of the epochs it redoes (no
    duplicates). A mid-epoch checkpoint also writes the running means of its unfinished epoch (``<log>.partial.json``,
    with its step), so the row of an epoch resumed in its middle averages all its batches, as an uninterrupted run's
    (each batch weighted alike: exact when they have one size, as with ``drop_remainder``). ``steps_per_epoch``
    (default: ``fit``'s steps) converts steps to epochs; give it when ``fit`` runs on the rest of an epoch only (a
    mid-epoch resume, see ``run_goes_on``).
    """

    def __init__(self, path, every=1, log=None, every_steps=0, steps_per_epoch=None):
        super().__init__()
        self.path = os.fspath(path)
        self.every = max(int(every), 1)
        self.every_steps = check_int("every_steps", every_steps, minimum=0)
        self.log = None if log is None else os.fspath(log)
        self.partial = None if log is None else os.path.splitext(self.log)[0] + ".partial.json"
        self.steps_per_epoch = steps_per_epoch
        self._pending = False  # trained since the last save
        self._due = False  # a step checkpoint fell on the epoch's last batch: the epoch end writes it, with the row
        self._rows = []
        self._step = self._epoch_start = 0
        self._before = None  # (batches, mean logs) of the resumed epoch before the resume

    def on_train_begin(self, logs=None):
        # Steps are counted from here on: reading ``iterations`` at every batch would sync JAX's state each step.
        self._step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        if self.log is not None:
            done, batches = divmod(self._step, self.steps_per_epoch or (self.params or {}).get("steps") or 1)
            # the rows of this process's previous fit (a run made of several fits), else those on disk
            self._rows = [row for row in (self._rows or _read_csv(self.log)) if int(row["epoch"]) < done]
            partial = _read_json(self.partial) if batches and self._before is None else {}
            if partial.get("step") == self._step:
                self._before = batches, partial["logs"]

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = self._step

    def on_train_batch_end(self, batch, logs=None):
        before, self._step = self._step, self._epoch_start + batch + 1
        self._pending = True
        if self.every_steps and self._step // self.every_steps > before // self.every_steps:
            if batch + 1 == (self.params or {}).get("steps"):
                self._due = True
            else:
                self._save(partial=self._epoch_logs(batch + 1, logs))

    def on_epoch_end(self, epoch, logs=None):
        if self.log is not None:
            self._rows.append({"epoch": epoch, **self._epoch_logs((self.params or {}).get("steps") or 1, logs)})
        self._before = None
        if (epoch + 1) % self.every == 0 or self._due:
            self._save()

    def _epoch_logs(self, batches, logs):
        """The mean logs of the epoch so far: ``fit``'s means over its ``batches`` batches of it, with those saved for
        the batches before the resume in an epoch resumed in its middle."""
        logs = {key: float(value) for key, value in (logs or {}).items()}
        if self._before is None:
            return logs
        done, before = self._before
        return {k: (done * before[k] + batches * v) / (done + batches) if k in before else v for k, v in logs.items()}

    def on_train_end(self, logs=None):
        if self._pending:
            self._save()

    def _save(self, partial=None):
        """Write the log, then the model; ``partial``: the mean logs of the unfinished epoch, written first."""
        if self.log is not None and partial is not None:
            _atomic_write(self.partial, lambda tmp: _write_json(tmp, {"step": self._step, "logs": partial}), ".json")
        if self.log is not None:
            _write_csv(self.log, self._rows)
        atomic_save(self.model, self.path)  # ``self.model`` syncs JAX's training state into the variables first
        if partial is None and self.partial is not None and os.path.exists(self.partial):
            os.remove(self.partial)  # an epoch-end checkpoint: no unfinished epoch
        self._pending = self._due = False


class StopOnInterrupt(keras.callbacks.Callback):
    """Ctrl-C (SIGINT) stops ``fit`` at the end of the current step with ``KeyboardInterrupt``, on every backend.

    Keras on JAX can swallow a ``KeyboardInterrupt`` raised while it waits for a step's loss and train on, so
    during ``fit`` SIGINT only sets a flag here, and the next batch end raises. A second Ctrl-C raises at once.
    The last checkpoint stays as it was (nothing is saved for the interrupted step), so the run can resume from
    it. Installed from the main thread only (elsewhere Python cannot take signals).
    """

    def __init__(self):
        super().__init__()
        self._previous = None
        self.interrupted = False

    def on_train_begin(self, logs=None):
        self.interrupted = False
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum, frame):
        if self.interrupted:
            self._restore()
            raise KeyboardInterrupt("interrupted twice")
        self.interrupted = True

    def on_train_batch_end(self, batch, logs=None):
        if self.interrupted:
            self._restore()
            raise KeyboardInterrupt("training interrupted (Ctrl-C)")

    def on_train_end(self, logs=None):
        self._restore()

    def _restore(self):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None


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
    """Every ``every`` epochs and after the last one, generates one image per entry of ``conditions`` and saves a
    captioned grid PNG ``<folder>/epoch_<NNN>.png`` (the same seed each time, so grids compare across epochs).
    A run shorter than ``every`` epochs thus still writes its final grid.

    Args:
        folder: where the grids go.
        conditions: what ``model.generate`` takes (labels, tags, params), or ``None`` for unconditional models.
        captions: one caption per image (e.g. class names).
        every: epochs between grids (0 disables grids, the final one too).
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
        self._last_epoch = None  # the last epoch finished, when it has no grid yet

    def on_epoch_end(self, epoch, logs=None):
        self._last_epoch = epoch
        if self.every > 0 and (epoch + 1) % self.every == 0:
            self._write(epoch)

    def on_train_end(self, logs=None):
        if self.every > 0 and self._last_epoch is not None:
            self._write(self._last_epoch)

    def _write(self, epoch):
        self._last_epoch = None
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


@contextlib.contextmanager
def run_goes_on(callbacks):
    """Within it, the end-of-run work of this module's callbacks in ``callbacks`` waits (the final checkpoint, grid
    and loss curve of ``on_train_end``): for a ``fit`` that another ``fit`` call continues, such as the rest of the
    epoch a run resumes in the middle of. Their ``on_train_end`` is shadowed by a no-op for the duration."""
    deferred = [c for c in callbacks if isinstance(c, (AtomicCheckpoint, SampleGrid, LossCurve))]
    for callback in deferred:
        callback.on_train_end = _wait
    try:
        yield
    finally:
        for callback in deferred:
            del callback.on_train_end


def _wait(logs=None):
    """Stands in for ``on_train_end`` within ``run_goes_on``."""

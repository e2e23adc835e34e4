"""``ImageFolder``: a folder of images streamed from disk, with labels, tags or parameter vectors."""

import os
import warnings

import numpy as np

from keras_dit.data import annotations
from keras_dit.data.dataset import CONDITION_KINDS, BatchedDataset
from keras_dit.data.images import DECODE_ERRORS, IMAGE_EXTENSIONS, load_image
from keras_dit.validation import check_choice, check_int


def list_images(directory):
    """Image files under ``directory`` (recursive, hidden entries skipped), as sorted relative POSIX paths."""
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"Image folder {directory!r} does not exist (or is not a folder).")
    files = []
    for root, dirs, names in os.walk(directory):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        rel = os.path.relpath(root, directory)
        files += [
            name if rel == "." else f"{rel.replace(os.sep, '/')}/{name}"
            for name in names
            if not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)
        ]
    if not files:
        raise ValueError(
            f"Image folder {directory!r} holds no images (looked recursively for {', '.join(IMAGE_EXTENSIONS)})."
        )
    return sorted(files)


def _match(names, files, directory, source):
    """Index into ``files`` of each name (a path relative to ``directory`` or absolute, or an unambiguous base
    name)."""
    lookup = {f: i for i, f in enumerate(files)}
    base_names = {}
    for i, f in enumerate(files):
        base = f.rsplit("/", 1)[-1]
        base_names[base] = None if base in base_names else i  # None: ambiguous
    indices = []
    for name in names:
        key = os.path.relpath(name, directory) if os.path.isabs(name) else name
        key = key.replace("\\", "/").removeprefix("./")
        index = lookup.get(key, base_names.get(key))
        if index is None:
            raise ValueError(
                f"{source} names {name!r}, which is not an image in the folder "
                f"({'ambiguous base name' if key in base_names else 'no such file'}); name files by their path "
                "relative to the folder, e.g. 'cats/001.png'."
            )
        indices.append(index)
    return indices


class ImageFolder(BatchedDataset):
    """Images read recursively from a folder and decoded batch by batch, never all at once.

    Args:
        directory: the folder (png, jpg/jpeg, webp, bmp files, searched recursively).
        image_size: output side (int) or ``(height, width)``: resize the shorter side, then crop.
        condition: ``None`` (images only), ``"labels"`` (the top-level sub-folder names, sorted; see
            ``class_names``), ``"tags"`` (multi-hot over ``tag_vocabulary``) or ``"params"``.
        tags_file: CSV of ``file,tags`` rows; ``None`` reads a sidecar ``<image>.txt`` beside each image
            (an image without one has no tags).
        params_file: CSV (``file,v1,...,vP``) or ``.npz`` (``files``, ``params``) of parameter vectors.
        tag_vocabulary: list of tags, or a text file with one per line; ``None`` builds it from the data
            (tags used at least ``min_tag_count`` times, most frequent first). Tags outside a given
            vocabulary are ignored, with one warning that names a few.
        min_tag_count: see ``tag_vocabulary``.
        channels: 3 (RGB) or 1 (grayscale).
        crop: ``"center"`` or ``"random"`` (a new offset every epoch).
        flip: random left-right mirroring.
        **kwargs: ``BatchedDataset`` options: batch_size, shuffle, seed, drop_remainder, and workers
            (default 4: batches decoded by a thread pool while the model trains), use_multiprocessing,
            max_queue_size.

    With a tags CSV or a parameter file, the images it lists form the data set (an image it does not list
    is left out, with a warning); a listed file that is not in the folder is an error. An unreadable image
    is skipped with a warning naming it, its place taken by the next readable one, and the end of each
    epoch warns with the count (with ``use_multiprocessing`` the count is per worker process).

    Example:
    >>> data = ImageFolder("pets/", image_size=64, condition="labels", batch_size=32, flip=True)
    >>> data.class_names         # ["cat", "dog"]
    >>> model.fit(data, epochs=10)
    """

    def __init__(self, directory, image_size, condition=None, tags_file=None, params_file=None,
                 tag_vocabulary=None, min_tag_count=1, channels=3, crop="center", flip=False, workers=4, **kwargs):
        if condition not in CONDITION_KINDS:
            raise ValueError(f"condition must be one of {CONDITION_KINDS}, got {condition!r}.")
        check_choice("crop", crop, ("center", "random"))
        check_int("min_tag_count", min_tag_count)
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels!r}.")
        size = (image_size, image_size) if np.isscalar(image_size) else tuple(image_size)
        if len(size) != 2 or not all(isinstance(s, (int, np.integer)) and s > 0 for s in size):
            raise ValueError(f"image_size must be a positive int or (height, width), got {image_size!r}.")
        if condition == "params" and params_file is None:
            raise ValueError("condition='params' needs params_file (a CSV or .npz of parameter vectors).")
        self.directory = str(directory)
        files = list_images(self.directory)
        self.class_names = self.tag_vocabulary = self.param_names = None
        self.condition = None

        if condition == "labels":
            top_level = [f for f in files if "/" not in f]
            if top_level:
                raise ValueError(
                    f"condition='labels' takes each class from a sub-folder, but {top_level[0]!r} is directly in "
                    f"{self.directory!r}; move images into one sub-folder per class."
                )
            folders = [f.split("/", 1)[0] for f in files]
            self.class_names = sorted(set(folders))
            label = {name: i for i, name in enumerate(self.class_names)}
            self.condition = np.array([label[d] for d in folders], dtype=np.int32)
        elif condition == "tags":
            if tags_file is None:
                tag_lists = [self._sidecar_tags(f) for f in files]
            else:
                table = annotations.read_tags_csv(tags_file)
                keep = _match(table, files, self.directory, f"Tags file {tags_file!r}")
                files, tag_lists = self._listed(files, keep, list(table.values()), f"tags file {tags_file!r}")
            self._set_tags(tag_lists, tag_vocabulary, min_tag_count)
        elif condition == "params":
            names, params, self.param_names = annotations.read_params(params_file)
            keep = _match(names, files, self.directory, f"Parameter file {params_file!r}")
            files, self.condition = self._listed(files, keep, params, f"parameter file {params_file!r}")
            self.condition = np.asarray(self.condition, dtype=np.float32)

        super().__init__(len(files), workers=workers, **kwargs)
        self.files = files
        self.condition_kind = condition
        self.image_size, self.channels, self.crop, self.flip = size, channels, crop, flip
        self.unreadable = set()
        self._skipped = []

    @property
    def image_shape(self):
        return (*self.image_size, self.channels)

    def _listed(self, files, keep, values, source):
        """The files an annotation file lists (in its order) with their values; warns about the others."""
        left_out = len(files) - len(set(keep))
        if left_out:
            warnings.warn(f"{left_out} image(s) in {self.directory!r} are not listed in the {source}; left out.")
        return [files[i] for i in keep], values

    def _sidecar_tags(self, file):
        path = os.path.join(self.directory, os.path.splitext(file)[0] + ".txt")
        if not os.path.isfile(path):
            return []
        with open(path, encoding="utf-8") as f:
            return annotations.parse_tags(f.read())

    def _set_tags(self, tag_lists, vocabulary, min_count):
        if vocabulary is None:
            vocabulary = annotations.build_tag_vocabulary(tag_lists, min_count)
            if not vocabulary:
                raise ValueError(
                    f"No tag in {self.directory!r} is used {min_count} or more times; write tags in sidecar .txt "
                    "files or a tags CSV, or lower min_tag_count."
                )
        else:
            vocabulary = annotations.read_tag_vocabulary(vocabulary)
            unknown = sorted({t for tags in tag_lists for t in tags} - set(vocabulary))
            if unknown:
                warnings.warn(f"{len(unknown)} tag(s) not in the given vocabulary are ignored, e.g. {unknown[:5]}.")
        self.tag_vocabulary = vocabulary
        column = {tag: j for j, tag in enumerate(vocabulary)}
        # Tags are stored as index lists and expanded per batch: (N, V) multi-hot rows may not fit in memory.
        self._tag_indices = [np.array([column[t] for t in tags if t in column], dtype=np.int64) for tags in tag_lists]

    def _condition(self, indices):
        if self.condition_kind != "tags":
            return self.condition[indices]
        out = np.zeros((len(indices), len(self.tag_vocabulary)), dtype=np.float32)  # (B, V)
        for row, i in enumerate(indices):
            out[row, self._tag_indices[i]] = 1.0
        return out

    def _load(self, indices, epoch):
        images, used = [], []
        for index in indices:
            index, image = self._read_first_readable(int(index), epoch)
            images.append(image)
            used.append(index)
        return np.stack(images), np.array(used)

    def _read_first_readable(self, index, epoch):
        """Decode image ``index``, or the next readable one after it (wrapping around) if it is unreadable."""
        for step in range(self.num_examples):
            candidate = (index + step) % self.num_examples
            file = self.files[candidate]
            if file in self.unreadable:
                self._skipped.append(file)
                continue
            rng = np.random.default_rng([self.seed, epoch, candidate])
            try:
                image = load_image(os.path.join(self.directory, file), self.image_size, self.channels,
                                   self.crop, self.flip, rng)
            except DECODE_ERRORS as error:
                self.unreadable.add(file)
                self._skipped.append(file)
                warnings.warn(f"Skipping unreadable image {file!r} in {self.directory!r}: {error}")
                continue
            return candidate, image
        raise ValueError(f"None of the {self.num_examples} images in {self.directory!r} could be read.")

    def on_epoch_end(self):
        if self._skipped:
            warnings.warn(
                f"{len(self._skipped)} unreadable image(s) skipped in {self.directory!r} this epoch: "
                f"{sorted(set(self._skipped))[:5]}."
            )
        self._skipped = []  # a list: appends from worker threads are atomic
        super().on_epoch_end()

"""Batched data sets for ``model.fit`` on every backend: ``keras.utils.PyDataset`` subclasses.

A batch is ``(images, condition)``: images float32 (B, H, W, C) in [-1, 1] and the condition as the data
set's ``condition_kind`` says, labels int32 (B,), multi-hot tags float32 (B, V) or parameter vectors
float32 (B, P); an unconditional data set yields images alone. The order is a permutation drawn from
``(seed, epoch)``, so two runs with the same seed see the same batches, and every epoch a new order; ``epoch``
counts ``on_epoch_end`` calls (``fit`` makes one before its first epoch as well). The counter advances in
``on_epoch_end``, which Keras calls after stopping its worker threads, so no worker sees a half-changed order.
(``fit(shuffle=True)``, its default, also shuffles the order of whole batches with Python's ``random``;
pass ``shuffle=False`` to ``fit`` when batches must repeat exactly.)
"""

import math

import keras
import numpy as np

from keras_dit.data.images import to_float
from keras_dit.validation import check_int

CONDITION_KINDS = (None, "labels", "tags", "params")


class EpochOrder:
    """Mixin of the data sets: the example order of each epoch, a permutation drawn from ``(seed, epoch)``.

    Two runs with the same seed see the same batches, and a resumed run (``set_epoch``) the ones an
    uninterrupted run would have seen. The class sets ``num_examples``, ``shuffle`` and ``seed`` (an int), then
    calls ``set_epoch(0)``.
    """

    def order(self, epoch):
        """The example indices of ``epoch`` in the order they are batched."""
        if not self.shuffle:
            return np.arange(self.num_examples)
        return np.random.default_rng([self.seed, epoch]).permutation(self.num_examples)

    def set_epoch(self, epoch):
        """Continue at ``epoch``: its order from now on, then the next epochs' in turn."""
        self.epoch = int(epoch)
        self._order = self.order(self.epoch)

    def on_epoch_end(self):
        self.set_epoch(self.epoch + 1)


class SkipBatches(keras.utils.PyDataset):
    """The batches of ``dataset`` (a ``PyDataset``) from batch ``skip`` on, in its current epoch's order: the rest
    of the epoch that a run resumes in the middle of (``fit`` on it, then on ``dataset`` for the next epochs).
    The epoch hooks are ``dataset``'s own, so its epoch counter advances as if ``fit`` ran on it.
    """

    def __init__(self, dataset, skip):
        super().__init__(workers=dataset.workers, use_multiprocessing=dataset.use_multiprocessing,
                         max_queue_size=dataset.max_queue_size)
        self.dataset = dataset
        self.skip = check_int("skip", skip, minimum=0, maximum=len(dataset) - 1,
                              hint=f"the data set has {len(dataset)} batches")

    def __len__(self):
        return len(self.dataset) - self.skip

    def __getitem__(self, index):
        if not 0 <= index < len(self):
            raise IndexError(f"Batch index {index} out of range for {len(self)} batches.")
        return self.dataset[index + self.skip]

    def on_epoch_begin(self):
        self.dataset.on_epoch_begin()

    def on_epoch_end(self):
        self.dataset.on_epoch_end()


class BatchedDataset(EpochOrder, keras.utils.PyDataset):
    """Base class: batching, the seeded per-epoch order (``EpochOrder``) and the ``as_numpy`` helper.

    Subclasses implement ``_load(indices, epoch)`` -> (images (B, H, W, C) float32, indices actually used)
    and set ``self.condition_kind``; they may override ``_condition(indices)``.

    Args:
        num_examples: size of the data set.
        batch_size: examples per batch.
        shuffle: draw a new order every epoch (else the stored order).
        seed: seed of the order and of random augmentations.
        drop_remainder: drop the last partial batch, so every batch has the same shape (compiled training
            steps are traced once).
        workers, use_multiprocessing, max_queue_size: how ``fit`` prepares batches in parallel
            (``keras.utils.PyDataset``); ``workers > 1`` decodes that many batches at once in a thread pool.
    """

    def __init__(self, num_examples, batch_size=32, shuffle=True, seed=0, drop_remainder=True, workers=1,
                 use_multiprocessing=False, max_queue_size=10):
        super().__init__(workers=workers, use_multiprocessing=use_multiprocessing, max_queue_size=max_queue_size)
        check_int("batch_size", batch_size)
        check_int("workers", workers)
        if drop_remainder and num_examples < batch_size:
            raise ValueError(
                f"batch_size {batch_size} is larger than the data set ({num_examples} examples), so "
                "drop_remainder=True leaves no batch; lower batch_size or set drop_remainder=False."
            )
        self.num_examples = int(num_examples)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = seed
        self.drop_remainder = drop_remainder
        self.set_epoch(0)

    def __len__(self):
        if self.drop_remainder:
            return self.num_examples // self.batch_size
        return math.ceil(self.num_examples / self.batch_size)

    def __getitem__(self, index):
        if not 0 <= index < len(self):
            raise IndexError(f"Batch index {index} out of range for {len(self)} batches.")
        indices = self._order[index * self.batch_size:(index + 1) * self.batch_size]
        images, indices = self._load(indices, self.epoch)
        if self.condition_kind is None:
            return images
        return images, self._condition(indices)

    def as_numpy(self):
        """All examples in stored order: images (N, H, W, C) float32, or ``(images, condition)``.

        Holds the whole set in memory: meant for small sets (evaluation, tests, built-in data).
        """
        chunks = [np.arange(start, min(start + self.batch_size, self.num_examples))
                  for start in range(0, self.num_examples, self.batch_size)]
        loaded = [self._load(chunk, self.epoch) for chunk in chunks]
        images = np.concatenate([batch for batch, _ in loaded])
        if self.condition_kind is None:
            return images
        return images, self._condition(np.concatenate([used for _, used in loaded]))

    def _condition(self, indices):
        return self.condition[indices]

    def _load(self, indices, epoch):
        raise NotImplementedError


class ArrayDataset(BatchedDataset):
    """In-memory images (and condition) as a ``fit``-ready data set; the built-in data sets return one.

    Args:
        images: (N, H, W, C) uint8 in [0, 255] or float in [-1, 1]; kept as given, converted per batch.
        condition: optional (N,) int labels, (N, V) multi-hot tags or (N, P) parameter vectors.
        condition_kind: ``"labels"``, ``"tags"`` or ``"params"`` (required with ``condition``).
        class_names: names of the labels (label ``i`` is ``class_names[i]``).
        tag_vocabulary: names of the tags (column ``j`` of the multi-hot vectors).
        param_names: names of the parameter vector's values.
        flip: mirror each image left-right with probability 1/2 (seeded by seed, epoch and example).
        **kwargs: ``BatchedDataset`` options (batch_size, shuffle, seed, drop_remainder, workers, ...).
    """

    def __init__(self, images, condition=None, condition_kind=None, class_names=None, tag_vocabulary=None,
                 param_names=None, flip=False, **kwargs):
        images = np.asarray(images)
        if images.ndim != 4:
            raise ValueError(f"images must be (N, H, W, C), got shape {images.shape}.")
        if (condition is None) != (condition_kind is None) or condition_kind not in CONDITION_KINDS:
            raise ValueError(
                f"condition_kind must be one of {CONDITION_KINDS[1:]} when a condition is given and None "
                f"without one; got condition_kind={condition_kind!r} with "
                f"{'no condition' if condition is None else 'a condition'}."
            )
        if condition is not None:
            dtype = "int32" if condition_kind == "labels" else "float32"
            condition = np.asarray(condition, dtype=dtype)
            if len(condition) != len(images):
                raise ValueError(f"condition has {len(condition)} rows but there are {len(images)} images.")
        super().__init__(len(images), **kwargs)
        self.images = images
        self.condition = condition
        self.condition_kind = condition_kind
        self.class_names = None if class_names is None else list(class_names)
        self.tag_vocabulary = None if tag_vocabulary is None else list(tag_vocabulary)
        self.param_names = None if param_names is None else list(param_names)
        self.flip = flip

    @property
    def image_shape(self):
        return self.images.shape[1:]

    def _load(self, indices, epoch):
        images = to_float(self.images[indices])  # (B, H, W, C)
        if self.flip:
            mirror = np.array([np.random.default_rng([self.seed, epoch, i]).random() < 0.5 for i in indices])
            images = np.where(mirror[:, None, None, None], images[:, :, ::-1], images)
        return images, indices

"""Latent cache: encode a data set once with a ``KLVAE``, keep the latents on disk, train diffusion on them.

On-disk format (version 1): one uncompressed NumPy ``.npz`` file holding
- ``latents``: (N, h, w, latent_channels) float32 (or float16) *diffusion* latents, i.e. already
  ``(z - shift_factor) * scale_factor`` (``vae.scale_latents``); decode with ``vae.decode(vae.unscale_latents(z))``;
- ``field_<name>``: (N, ...) one array per non-image entry of the batches (labels, tags, parameters ...);
- ``meta``: a JSON string: ``format`` ("keras_dit.latent_cache"), ``version``, ``count`` (N), ``latent_shape``,
  ``latent_channels``, ``scale_factor``, ``shift_factor``, ``encoding`` ("mean" or "sample") and ``seed``,
  ``fingerprint`` (of the VAE's architecture and encoder weights, see ``vae_fingerprint``), ``structure`` (how
  batches looked: ``kind`` "array" | "tuple" | "dict", ``image_key``, ``fields`` in order) and ``vae_config``.

Writing is atomic: the file is written under a temporary name in the same folder, flushed to disk, then renamed
over ``path`` (``os.replace``), so a killed run leaves either the previous cache or none, never a half file under
``path``. Reading checks the format, the count, and (given the VAE) that the latents are this VAE's.
"""

import hashlib
import json
import math
import os
import tempfile
import zipfile

import keras
import numpy as np

from keras_dit.data.dataset import EpochOrder
from keras_dit.latent.kl_vae import DiagonalGaussian, plain_factor

FORMAT = "keras_dit.latent_cache"
VERSION = 1
_IMAGE_KEYS = ("images", "image", "x")


def _length(arrays):
    """Rows of an array, or of a tuple / dict of equal-length arrays."""
    if isinstance(arrays, dict):
        return len(next(iter(arrays.values())))
    return len(arrays[0]) if isinstance(arrays, tuple) else len(arrays)


def _array_batches(arrays, batch_size):
    """Batches of an array, or of a tuple / dict of equal-length arrays."""
    for start in range(0, _length(arrays), batch_size):
        if isinstance(arrays, tuple):
            yield tuple(a[start:start + batch_size] for a in arrays)
        elif isinstance(arrays, dict):
            yield {k: a[start:start + batch_size] for k, a in arrays.items()}
        else:
            yield arrays[start:start + batch_size]


def _is_arrays(dataset):
    if isinstance(dataset, np.ndarray):
        return True
    values = dataset.values() if isinstance(dataset, dict) else dataset if isinstance(dataset, tuple) else ()
    return bool(values) and all(isinstance(v, np.ndarray) for v in values) and len({len(v) for v in values}) == 1


def iterate_batches(dataset, batch_size=32):
    """(batches, number of batches or None) of a data set.

    ``dataset``: a NumPy array of images, a tuple / dict of equal-length arrays (images first / under
    ``"images"``), a ``keras.utils.PyDataset``, a ``tf.data.Dataset`` or any iterable of batches.
    """
    if _is_arrays(dataset):
        return _array_batches(dataset, batch_size), math.ceil(_length(dataset) / batch_size)
    if isinstance(dataset, keras.utils.PyDataset):
        count = dataset.num_batches
        if count is None:
            raise ValueError("This PyDataset is infinite (num_batches is None); pass a finite one.")
        return (dataset[i] for i in range(count)), count
    try:
        count = len(dataset)
    except TypeError:
        count = None
    return iter(dataset), count


def split_batch(batch):
    """One batch -> (images as float32 NumPy, structure dict, {field name: NumPy array})."""
    if isinstance(batch, dict):
        image_key = next((k for k in _IMAGE_KEYS if k in batch), None)
        if image_key is None:
            raise ValueError(f"Dict batches need the images under one of {_IMAGE_KEYS}; got keys {sorted(batch)}.")
        fields = {k: np.asarray(v) for k, v in batch.items() if k != image_key}
        return np.asarray(batch[image_key], "float32"), {"kind": "dict", "image_key": image_key,
                                                          "fields": list(fields)}, fields
    if isinstance(batch, (tuple, list)):
        fields = {str(i): np.asarray(v) for i, v in enumerate(batch[1:], start=1) if v is not None}
        return np.asarray(batch[0], "float32"), {"kind": "tuple", "image_key": None, "fields": list(fields)}, fields
    return np.asarray(batch, "float32"), {"kind": "array", "image_key": None, "fields": []}, {}


def encode_dataset(vae, dataset, batch_size=32, sample=False, seed=None, max_batches=None, verbose=1):
    """Yield ``(latents, structure, fields)`` per batch: the VAE's *unscaled* latents as NumPy.

    ``sample=False`` takes the posterior mean, ``True`` a sample (reproducible with ``seed``). A Keras
    ``Progbar`` shows progress when ``verbose``.
    """
    batches, count = iterate_batches(dataset, batch_size)
    if max_batches is not None:
        count = max_batches if count is None else min(count, max_batches)
    progbar = keras.utils.Progbar(count, unit_name="batch") if verbose else None
    generator = keras.random.SeedGenerator(seed) if sample else None
    for i, batch in enumerate(batches):
        if max_batches is not None and i >= max_batches:
            break
        images, structure, fields = split_batch(batch)
        vae.check_shape(images.shape, "images")
        posterior = DiagonalGaussian(vae.encoder.predict_on_batch(images))
        latents = posterior.sample(generator) if sample else posterior.mean
        yield keras.ops.convert_to_numpy(latents), structure, fields
        if progbar is not None:
            progbar.update(i + 1)


def vae_fingerprint(vae):
    """SHA-256 (hex) of the VAE's architecture and encoder weights: what determines its latents.

    The decoder, the scale and the shift are left out, so fine-tuning the decoder keeps a cache valid.
    """
    config = {k: v for k, v in vae.get_config().items()
              if k not in ("name", "trainable", "scale_factor", "shift_factor", "seed")}
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=list).encode())
    for weight in vae.encoder.weights:
        digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(weight), "float32").tobytes())
    return digest.hexdigest()


def write_latent_cache(vae, dataset, path, batch_size=32, sample=False, seed=None, dtype="float32", verbose=1):
    """Encode ``dataset`` with ``vae`` and write the diffusion latents (and the batches' other entries) to ``path``.

    Args:
        vae: a ``KLVAE``; its current ``scale_factor`` / ``shift_factor`` are applied and recorded.
        dataset: images and their labels / tags / parameters, in any form ``iterate_batches`` takes.
        path: the cache file (``.npz`` by convention); replaced atomically.
        sample: store a posterior sample per image (with ``seed``) instead of the mean.
        dtype: ``"float32"`` or ``"float16"`` storage.

    Returns the path.
    """
    if dtype not in ("float32", "float16"):
        raise ValueError(f"dtype={dtype!r}; the cache stores 'float32' or 'float16' latents.")
    latents, fields, structure = [], {}, None
    for z, batch_structure, batch_fields in encode_dataset(vae, dataset, batch_size, sample, seed, verbose=verbose):
        if structure is None:
            structure = batch_structure
            fields = {name: [] for name in structure["fields"]}
        elif batch_structure != structure:
            raise ValueError(f"Batches change form within the data set: {structure} then {batch_structure}.")
        latents.append(keras.ops.convert_to_numpy(vae.scale_latents(z)).astype(dtype))
        for name, value in batch_fields.items():
            fields[name].append(value)
    if structure is None:
        raise ValueError("The data set is empty: there is nothing to cache.")
    latents = np.concatenate(latents)
    meta = {
        "format": FORMAT, "version": VERSION, "count": int(len(latents)), "latent_shape": list(latents.shape[1:]),
        "latent_channels": vae.latent_channels, "scale_factor": plain_factor(vae.scale_factor),
        "shift_factor": plain_factor(vae.shift_factor), "encoding": "sample" if sample else "mean", "seed": seed,
        "fingerprint": vae_fingerprint(vae), "structure": structure, "dtype": dtype,
        "vae_config": vae.get_config(),
    }
    arrays = {"latents": latents, **{f"field_{name}": np.concatenate(v) for name, v in fields.items()}}
    arrays["meta"] = np.array(json.dumps(meta, default=list))
    _atomic_savez(os.fspath(path), arrays)
    return path


def _atomic_savez(path, arrays):
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the cache a normal file's permissions
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.remove(tmp)
        raise


class LatentDataset(EpochOrder, keras.utils.PyDataset):
    """Cached latents as a ``keras.utils.PyDataset`` that feeds ``DiffusionModel.fit``.

    Batches are dicts whose ``"latents"`` key marks them as diffusion latents, already encoded and scaled, so
    the model never has to tell them from images by their shape. The other entries keep the original batches'
    meaning: ``(images, condition, sample_weight)`` tuples give ``{"latents", "condition", "sample_weight"}``,
    dict batches keep their keys (the image key becomes ``"latents"``), bare images give ``{"latents"}``.
    ``.latents``, ``.fields`` and ``.metadata`` give the whole cache (for other models, say). The order of
    each epoch is drawn from ``(seed, epoch)`` (``EpochOrder``; ``seed=None`` draws a seed), so a resumed run
    continues in the order of an uninterrupted one (``set_epoch``).
    """

    def __init__(self, latents, fields, metadata, batch_size=32, shuffle=True, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.latents, self.fields, self.metadata = latents, fields, metadata
        self.batch_size = batch_size
        self.num_examples = len(latents)
        self.shuffle = shuffle
        self.seed = int(np.random.SeedSequence().generate_state(1)[0]) if seed is None else seed
        structure = metadata["structure"]
        tuple_names = dict(zip(("1", "2"), ("condition", "sample_weight")))
        self._keys = {name: tuple_names.get(name, f"field_{name}") if structure["kind"] == "tuple" else name
                      for name in structure["fields"]}
        self.set_epoch(0)

    def __len__(self):
        return math.ceil(len(self.latents) / self.batch_size)

    def __getitem__(self, index):
        if not 0 <= index < len(self):
            raise IndexError(f"Batch {index} out of range: this cache has {len(self)} batches.")
        rows = self._order[index * self.batch_size:(index + 1) * self.batch_size]
        return {"latents": self.latents[rows], **{key: self.fields[name][rows] for name, key in self._keys.items()}}


def _load(path):
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
        meta = json.loads(str(arrays.pop("meta")))
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as error:
        raise ValueError(
            f"{path!r} is not a complete latent cache ({type(error).__name__}: {error}); it may be from an "
            "interrupted write or corrupt. Write it again with kd.data.write_latent_cache."
        ) from error
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise ValueError(f"{path!r} is not a keras_dit latent cache of version {VERSION} (meta: {meta}).")
    latents = arrays.pop("latents")
    fields = {key[len("field_"):]: value for key, value in arrays.items() if key.startswith("field_")}
    if len(latents) != meta["count"] or any(len(v) != meta["count"] for v in fields.values()):
        raise ValueError(f"{path!r} holds {len(latents)} latents but its metadata says {meta['count']}; "
                         "write it again.")
    return latents, fields, meta


def check_cache_matches(meta, vae, path="the cache"):
    """Raise ``ValueError`` naming every difference between the cache's VAE and ``vae``."""
    problems = []
    if meta["latent_channels"] != vae.latent_channels:
        problems.append(f"latent_channels {meta['latent_channels']} vs {vae.latent_channels}")
    for name in ("scale_factor", "shift_factor"):
        cached, current = meta[name], plain_factor(getattr(vae, name))
        if (cached is None) != (current is None) or (
            cached is not None and not np.allclose(cached, current, rtol=1e-6, atol=0)
        ):
            problems.append(f"{name} {cached} vs {current}")
    if meta["fingerprint"] != vae_fingerprint(vae):
        problems.append("architecture or encoder weights (fingerprint differs)")
    if problems:
        raise ValueError(
            f"{path} was written with a different VAE: " + "; ".join(problems) + " (cache vs this VAE). "
            "Write the cache again with this VAE (after compute_scale_factor), or load the VAE it was made with."
        )


def read_latent_cache(path, vae=None, batch_size=32, shuffle=True, seed=None):
    """Read a cache written by ``write_latent_cache`` as a ``LatentDataset`` ready for ``fit``.

    With ``vae``, checks that the cache holds this VAE's latents (latent channels, scale and shift factors, the
    fingerprint of its architecture and encoder weights) and raises ``ValueError`` naming what differs.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No latent cache at {path!r}; write one with kd.data.write_latent_cache.")
    latents, fields, meta = _load(path)
    if vae is not None:
        check_cache_matches(meta, vae, repr(path))
    return LatentDataset(latents, fields, meta, batch_size=batch_size, shuffle=shuffle, seed=seed)

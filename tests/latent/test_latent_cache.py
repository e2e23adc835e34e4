"""Latent cache: round trip with labels, DiffusionModel-ready batches, VAE checks, atomic writes, corrupt files."""

import json
import os

import numpy as np
import pytest

import keras_dit as kd
from keras_dit.latent.latent_cache import read_latent_cache, write_latent_cache
from tests.helpers import assert_close, to_numpy


def _umask():
    umask = os.umask(0)
    os.umask(umask)
    return umask


@pytest.fixture(scope="module")
def vae():
    vae = kd.models.KLVAE.from_preset("kl-f4-tiny", seed=0)
    vae.scale_factor, vae.shift_factor = 0.5, 0.1
    return vae


IMAGES = np.random.default_rng(0).uniform(-1, 1, (7, 8, 8, 3)).astype("float32")
LABELS = np.arange(7, dtype="int32") % 3


def test_round_trip_with_labels(vae, tmp_path):
    path = tmp_path / "latents.npz"
    assert write_latent_cache(vae, (IMAGES, LABELS), path, batch_size=3, verbose=0) == path
    cache = read_latent_cache(path, vae=vae, batch_size=4, shuffle=False)
    expected = (to_numpy(vae.encode(IMAGES).mean) - 0.1) * 0.5
    assert_close(cache.latents, expected, atol=1e-5, what="cached diffusion latents")
    np.testing.assert_array_equal(cache.fields["1"], LABELS)
    assert cache.metadata["count"] == 7 and cache.metadata["encoding"] == "mean"
    assert len(cache) == 2
    batch = cache[1]  # (images, labels) batches become DiffusionModel's {"latents", "condition"}
    assert set(batch) == {"latents", "condition"} and batch["latents"].shape == (3, 2, 2, 4)
    np.testing.assert_array_equal(batch["condition"], LABELS[4:])
    assert_close(vae.unscale_latents(batch["latents"]), to_numpy(vae.encode(IMAGES[4:]).mean), atol=1e-5)
    assert set(read_latent_cache(write_latent_cache(vae, IMAGES, tmp_path / "bare.npz", verbose=0))[0]) == {
        "latents"}
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o666 & ~_umask()), "a normal file's permissions"


def test_dict_batches_and_shuffle(vae, tmp_path):
    path = tmp_path / "latents.npz"
    batches = [{"images": IMAGES[i:i + 4], "labels": LABELS[i:i + 4]} for i in (0, 4)]
    write_latent_cache(vae, batches, path, sample=True, seed=1, dtype="float16", verbose=0)
    cache = read_latent_cache(path, vae=vae, batch_size=7, shuffle=True, seed=0)
    batch = cache[0]
    assert set(batch) == {"latents", "labels"} and batch["latents"].dtype == np.float16
    order = [int(np.flatnonzero((cache.latents == z).all(axis=(1, 2, 3)))[0]) for z in batch["latents"]]
    np.testing.assert_array_equal(batch["labels"], cache.fields["labels"][order])  # labels stay with latents
    assert sorted(order) == list(range(7)) and order != list(range(7)), "one shuffled epoch"
    mean = (to_numpy(vae.encode(IMAGES).mean) - 0.1) * 0.5
    assert not np.allclose(cache.latents, mean, atol=1e-2), "sample=True stores samples, not means"
    again = tmp_path / "again.npz"
    write_latent_cache(vae, batches, again, sample=True, seed=1, dtype="float16", verbose=0)
    np.testing.assert_array_equal(read_latent_cache(again).latents, cache.latents)  # seeded: reproducible


def test_cache_of_another_vae_is_refused(vae, tmp_path):
    path = tmp_path / "latents.npz"
    write_latent_cache(vae, IMAGES, path, verbose=0)
    other = kd.models.KLVAE.from_preset("kl-f4-tiny", seed=0)
    other.set_weights([w + 0.01 for w in vae.get_weights()])
    other.scale_factor, other.shift_factor = 0.5, 0.1
    with pytest.raises(ValueError, match="fingerprint differs"):
        read_latent_cache(path, vae=other)
    other.set_weights(vae.get_weights())
    other.scale_factor = 0.25
    with pytest.raises(ValueError, match=r"scale_factor 0.5 vs 0.25"):
        read_latent_cache(path, vae=other)
    wide = kd.models.KLVAE.from_preset("kl-f4-tiny", latent_channels=8)
    with pytest.raises(ValueError, match="latent_channels 4 vs 8"):
        read_latent_cache(path, vae=wide)
    other.scale_factor = 0.5
    read_latent_cache(path, vae=other)  # same weights and factors: accepted


def test_interrupted_write_leaves_previous_cache(vae, tmp_path):
    path = tmp_path / "latents.npz"
    write_latent_cache(vae, IMAGES, path, verbose=0)
    before = read_latent_cache(path, shuffle=False).latents

    def killed_midway():
        yield IMAGES[:4]
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_latent_cache(vae, killed_midway(), path, verbose=0)
    assert os.listdir(tmp_path) == ["latents.npz"], "no temporary file left behind"
    np.testing.assert_array_equal(read_latent_cache(path, vae=vae, shuffle=False).latents, before)


def test_truncated_or_foreign_files_are_rejected(vae, tmp_path):
    path = tmp_path / "latents.npz"
    write_latent_cache(vae, IMAGES, path, verbose=0)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # what a non-atomic writer killed halfway would leave
    with pytest.raises(ValueError, match="not a complete latent cache"):
        read_latent_cache(path)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, latents=np.zeros((2, 2, 2, 4)), meta=np.array(json.dumps({"format": "other"})))
    with pytest.raises(ValueError, match="not a keras_dit latent cache"):
        read_latent_cache(foreign)
    with pytest.raises(FileNotFoundError, match="No latent cache"):
        read_latent_cache(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match="empty"):
        write_latent_cache(vae, [], tmp_path / "empty.npz", verbose=0)

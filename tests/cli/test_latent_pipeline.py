"""``keras-dit -c latent`` end to end on a tiny config: train-vae -> scale-factor -> cache-latents -> train ->
sample, the outputs of each step, and the one-line errors of a cache or VAE that does not fit."""

import csv
import json
import os

import keras
import numpy as np
import pytest

import keras_dit as kd
from keras_dit.cli import builders
from keras_dit.cli.main import main, run
from keras_dit.latent import latent_cache
from keras_dit.latent.latent_cache import vae_fingerprint
from tests.helpers import LATENT_SIZE as SIZE
from tests.helpers import assert_close, latent_argv, run_error, to_numpy

pytestmark = pytest.mark.large  # training a VAE takes ~50 s of CPU on TensorFlow (graph tracing), ~15 s on JAX

NUM_IMAGES = 64  # the built-in synthetic set: 4 classes, 8 x 8 grayscale; latents 2 x 2 x 4


def synthetic_images():
    images, labels = kd.data.load_builtin("synthetic", image_size=SIZE, channels=1, shuffle=False,
                                          drop_remainder=False, batch_size=NUM_IMAGES).as_numpy()
    return images, labels


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """Runs the five steps once; returns the folder and what each step returned."""
    out = str(tmp_path_factory.mktemp("latent") / "run")
    results = {command: run([command, *latent_argv(out)])
               for command in ("train-vae", "scale-factor", "cache-latents", "train")}
    # sample needs only the VAE to decode the latents, not the cache
    results["sample"] = run(["sample", *latent_argv(out, "--set", "data.latent_cache=null")])
    return out, results


def test_train_vae_writes_a_vae_that_loads_and_reconstructs(pipeline):
    out, results = pipeline
    vae = keras.saving.load_model(os.path.join(out, "vae.keras"))
    assert isinstance(vae, kd.models.KLVAE) and vae.in_channels == 1 and vae.latent_channels == 4
    images, _ = synthetic_images()
    reconstruction = to_numpy(vae(images[:8]))
    assert reconstruction.shape == (8, SIZE, SIZE, 1) and np.all(np.isfinite(reconstruction))
    # the file holds the trained weights: the VAE train-vae returned reconstructs the same, an untrained one not
    assert_close(reconstruction, results["train-vae"](images[:8]), atol=1e-5, what="reloaded VAE")
    untrained = kd.models.KLVAE.from_preset("kl-f4-tiny", in_channels=1, seed=0)
    assert np.abs(to_numpy(untrained(images[:8])) - reconstruction).max() > 1e-3
    with open(os.path.join(out, "vae_log.csv"), newline="") as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["0"]
    assert os.path.isfile(os.path.join(out, "vae_trainer.keras")) and os.path.isfile(os.path.join(out, "vae_loss.png"))


def test_scale_factor_is_stored_and_makes_the_latents_unit_std(pipeline):
    out, results = pipeline
    factor = results["scale-factor"]
    assert np.isfinite(factor) and factor > 0
    vae = builders.load_vae(os.path.join(out, "vae.keras"))
    assert vae.scale_factor == pytest.approx(factor)
    images, _ = synthetic_images()
    latents = to_numpy(vae.scale_latents(to_numpy(vae.encode(images).mean)))
    assert np.std(latents) == pytest.approx(1.0, rel=1e-3)


def test_cache_holds_latents_labels_and_the_vae_fingerprint(pipeline):
    out, _ = pipeline
    path = os.path.join(out, "latents.npz")
    vae = builders.load_vae(os.path.join(out, "vae.keras"))
    images, labels = synthetic_images()
    with np.load(path) as npz:
        cache = {key: npz[key] for key in npz.files}
    assert set(cache) == {"latents", "field_1", "meta"}
    assert cache["latents"].shape == (NUM_IMAGES, SIZE // 4, SIZE // 4, 4) and cache["latents"].dtype == np.float32
    expected = vae.scale_latents(to_numpy(vae.encode(images).mean))
    assert_close(cache["latents"], expected, atol=1e-5, what="cached latents")
    np.testing.assert_array_equal(cache["field_1"], labels)
    meta = json.loads(str(cache["meta"]))
    assert meta["fingerprint"] == vae_fingerprint(vae) and meta["count"] == NUM_IMAGES
    assert meta["scale_factor"] == pytest.approx(vae.scale_factor) and meta["structure"]["kind"] == "tuple"
    assert not [name for name in os.listdir(out) if name.endswith(".tmp")], "no temporary file left behind"


def test_interrupted_cache_write_keeps_the_previous_cache(pipeline, monkeypatch, capsys):
    out, _ = pipeline
    path = os.path.join(out, "latents.npz")
    before = open(path, "rb").read()
    real = latent_cache.encode_dataset

    def killed_after_one_batch(*args, **kwargs):
        yield next(real(*args, **kwargs))
        raise KeyboardInterrupt

    monkeypatch.setattr(latent_cache, "encode_dataset", killed_after_one_batch)
    with pytest.raises(SystemExit) as exit_info:
        main(["cache-latents", *latent_argv(out)])
    assert exit_info.value.code == 130 and "interrupted" in capsys.readouterr().err
    assert open(path, "rb").read() == before
    assert not [name for name in os.listdir(out) if name.endswith(".tmp")]


def test_train_on_the_cache_and_sample_decoded_images(pipeline):
    out, results = pipeline
    model = keras.saving.load_model(os.path.join(out, "model.keras"))
    assert isinstance(model, kd.tasks.DiffusionModel)
    assert tuple(model.backbone.input["x"].shape[1:]) == (SIZE // 4, SIZE // 4, 4)  # trained on latents
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == NUM_IMAGES // 32
    samples = os.path.join(out, "samples")
    assert results["sample"] == os.path.join(samples, "samples.npz")
    with np.load(results["sample"]) as npz:
        images, labels = npz["images"], npz["labels"]
    assert images.dtype == np.uint8 and images.shape == (8, SIZE, SIZE, 1)  # decoded by the VAE
    assert labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert len(os.listdir(os.path.join(samples, "images"))) == 8
    assert os.path.isfile(os.path.join(samples, "grid.png"))


def test_cache_of_another_vae_is_refused(pipeline, tmp_path, capsys):
    out, _ = pipeline
    other = tmp_path / "other.keras"
    vae = kd.models.KLVAE.from_preset("kl-f4-tiny", in_channels=1, seed=1)
    vae.scale_factor = 1.0  # measured or not, its weights differ from the cache's VAE
    vae.save(other)
    argv = latent_argv(str(tmp_path / "run"), "--set", f"model.autoencoder={other}",
                       "--set", f"data.latent_cache={out}/latents.npz")
    line = run_error(capsys, ["train", *argv])
    assert "written with a different VAE" in line and "fingerprint differs" in line


def test_vae_that_does_not_fit_the_data(pipeline, tmp_path, capsys):
    out, _ = pipeline
    argv = latent_argv(out, "--set", "data.channels=3", "--set", f"vae.cache={tmp_path}/latents.npz")
    for command in ("scale-factor", "cache-latents"):
        line = run_error(capsys, [command, *argv])
        assert "vae.keras" in line and "1-channel" in line and "data.channels=3" in line
    assert not os.listdir(tmp_path)
    line = run_error(capsys, ["cache-latents", *latent_argv(str(tmp_path / "none"))])
    assert "does not exist" in line and "vae.keras" in line

"""DiffusionModel: training with fit on every backend, learning, sampling, EMA, resume and bad input."""

import keras
import numpy as np
import pytest

import keras_dit as kd
from tests.helpers import QUADRANT_CLASSES as CLASSES
from tests.helpers import QUADRANT_SIZE as SIZE
from tests.helpers import BACKEND, assert_close, dtype_policy, predicted_class, quadrant_backbone, quadrant_data
from tests.helpers import tiny_backbone, to_numpy

def diffusion_model(objective, **overrides):
    model = kd.tasks.DiffusionModel(quadrant_backbone(**overrides), objective, seed=2)
    model.compile(optimizer=keras.optimizers.AdamW(2e-3, weight_decay=0.0))
    return model


@pytest.mark.large
@pytest.mark.parametrize(
    "objective,sampler",
    [
        (kd.diffusion.GaussianDiffusion(prediction="v"), kd.samplers.DDIM()),
        (kd.diffusion.RectifiedFlow(), kd.samplers.Euler()),
    ],
    ids=["gaussian-ddim", "flow-euler"],
)
def test_learns_class_conditional_samples(objective, sampler):
    images, labels = quadrant_data()
    model = diffusion_model(objective)
    history = model.fit(images, labels, batch_size=32, epochs=15, shuffle=True, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.6 * losses[0], losses
    wanted = np.repeat(np.arange(CLASSES), 8).astype("int32")
    samples = model.generate(wanted, num_steps=20, sampler=sampler, guidance_scale=2.0, seed=0)
    assert samples.shape == (len(wanted), SIZE, SIZE, 1) and samples.dtype == np.uint8
    accuracy = float(np.mean(predicted_class(samples) == wanted))
    print(f"{type(objective).__name__} + {type(sampler).__name__}: class accuracy {accuracy:.3f}")
    assert accuracy >= 0.9, accuracy


def small_backbone(**overrides):
    """The smallest DiT that exercises every path; for the tests that check plumbing, not learning."""
    return quadrant_backbone(**{"hidden_size": 32, "depth": 1, "num_heads": 2, **overrides})


@pytest.fixture(scope="module")
def flow_model():
    """A small flow model with random (non-zero) weights, shared by the sampling tests."""
    keras.utils.set_random_seed(0)
    model = kd.tasks.DiffusionModel(small_backbone(), kd.diffusion.RectifiedFlow(), seed=2)
    rng = np.random.default_rng(0)
    model.backbone.set_weights([rng.normal(0, 0.05, w.shape).astype("float32") for w in model.backbone.get_weights()])
    return model


def test_same_seed_same_images_and_guidance_batches_once(flow_model):
    model = flow_model
    calls = []
    denoise = model.denoise

    def counting_denoise(x, t, condition=None, training=False):
        calls.append(int(x.shape[0]))  # once per step eagerly, once per trace in a compiled sampling loop
        return denoise(x, t, condition, training)

    model.denoise = counting_denoise
    model.__dict__.pop("_sampling_programs", None)  # trace afresh
    try:
        a = model.generate([0, 1], num_steps=3, seed=7)
        assert calls and set(calls) == {2}  # guidance scale 1: conditional forwards only
        calls.clear()
        b = model.generate([0, 1], num_steps=3, seed=7, guidance_scale=3.0)
        assert calls and set(calls) == {4}  # cond + uncond in one batched forward per step
    finally:
        del model.denoise
    np.testing.assert_array_equal(a, model.generate([0, 1], num_steps=3, seed=7))
    assert not np.array_equal(a, model.generate([0, 1], num_steps=3, seed=8))
    assert not np.array_equal(a, b)


def test_negative_condition_replaces_unconditional_branch(flow_model):
    model = flow_model
    null = model.generate([0, 1], num_steps=2, seed=1, guidance_scale=2.0, return_latents=True)
    explicit_null = model.generate([0, 1], negative_condition=[CLASSES, CLASSES], num_steps=2, seed=1,
                                   guidance_scale=2.0, return_latents=True)
    negative = model.generate([0, 1], negative_condition=[2, 3], num_steps=2, seed=1, guidance_scale=2.0,
                              return_latents=True)
    assert_close(explicit_null, null, atol=1e-5)
    assert np.abs(negative - null).max() > 1e-3


def test_fit_accepts_datasets_and_dicts():
    images, labels = quadrant_data(64)
    model = kd.tasks.DiffusionModel(small_backbone(), kd.diffusion.GaussianDiffusion(), seed=0)
    model.compile(optimizer="adam")

    class Batches(keras.utils.PyDataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            return images[i * 32:(i + 1) * 32], labels[i * 32:(i + 1) * 32]

    h1 = model.fit(Batches(), epochs=1, verbose=0)
    h2 = model.fit({"images": images, "condition": labels}, batch_size=32, epochs=1, verbose=0)
    assert np.isfinite(h1.history["loss"][0]) and np.isfinite(h2.history["loss"][0])
    if BACKEND == "tensorflow":
        import tensorflow as tf

        ds = tf.data.Dataset.from_tensor_slices((images, labels)).batch(32)
        assert np.isfinite(model.fit(ds, epochs=1, verbose=0).history["loss"][0])


def test_unconditional_training_and_generation():
    images, _ = quadrant_data(64)
    model = kd.tasks.DiffusionModel(small_backbone(num_classes=None), kd.diffusion.GaussianDiffusion(), seed=0)
    model.compile(optimizer="adam")
    assert np.isfinite(model.fit(images, batch_size=32, epochs=1, verbose=0).history["loss"][0])
    assert model.generate(num_images=3, num_steps=2, seed=0).shape == (3, SIZE, SIZE, 1)


def test_ema_sampling_and_keras_round_trip(tmp_path):
    """EMA weights are swapped in for sampling and back out; a .keras file keeps them, the objective and
    everything generate needs (same images after loading)."""
    images, labels = quadrant_data(64)
    objective = kd.diffusion.GaussianDiffusion(prediction="v", schedule="cosine")
    model = kd.tasks.DiffusionModel(small_backbone(), objective, seed=0)
    model.compile(optimizer=keras.optimizers.AdamW(1e-2, use_ema=True, ema_momentum=0.9))
    grids = []

    class SampleEveryEpoch(keras.callbacks.Callback):  # sampling mid-fit must leave training intact
        def on_epoch_end(self, epoch, logs=None):
            grids.append(self.model.generate([0, 1], num_steps=2, seed=0))

    model.fit(images, labels, batch_size=32, epochs=2, verbose=0, callbacks=[SampleEveryEpoch()])
    assert len(grids) == 2 and grids[0].shape == (2, SIZE, SIZE, 1)
    optimizer = model.optimizer

    def averages(m):
        o = m.optimizer
        return [to_numpy(o._model_variables_moving_average[o._get_variable_index(v)]) for v in m.trainable_variables]

    expected_averages = averages(model)
    for v in model.trainable_variables:  # make the raw weights differ from the averages
        v.assign(v + 0.5)
    raw = [to_numpy(v) for v in model.trainable_variables]
    with model.ema_weights():
        inside = [to_numpy(v) for v in model.trainable_variables]
    for a, b in zip(inside, expected_averages):
        np.testing.assert_allclose(a, b)
    for v, b in zip(model.trainable_variables, raw):
        np.testing.assert_allclose(to_numpy(v), b)
    assert optimizer.use_ema

    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.optimizer.use_ema and loaded.objective.get_config() == objective.get_config()
    for a, b in zip(averages(loaded), expected_averages):
        np.testing.assert_allclose(a, b)
    np.testing.assert_array_equal(
        loaded.generate([1, 2], num_steps=2, seed=3), model.generate([1, 2], num_steps=2, seed=3)
    )


class StopAtEpoch(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epoch:
            raise KeyboardInterrupt("simulated interrupt")


def test_resume_continues_the_curve(tmp_path):
    """Interrupted at epoch 2 and resumed with BackupAndRestore: same losses and weights as an unbroken run."""
    images, labels = quadrant_data(96)
    kwargs = dict(batch_size=32, epochs=4, shuffle=False, verbose=0)

    def fresh():
        keras.utils.set_random_seed(5)
        model = kd.tasks.DiffusionModel(small_backbone(), kd.diffusion.GaussianDiffusion(), seed=3)
        model.compile(optimizer=keras.optimizers.AdamW(1e-3, use_ema=True))
        return model

    unbroken = fresh()
    expected = unbroken.fit(images, labels, **kwargs).history["loss"]

    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    first = fresh()
    with pytest.raises(KeyboardInterrupt):
        first.fit(images, labels, callbacks=[backup, StopAtEpoch(2)], **kwargs)
    resumed = fresh()
    losses = resumed.fit(images, labels, callbacks=[backup], **kwargs).history["loss"]
    assert len(losses) == 2  # epochs 3 and 4 only
    np.testing.assert_allclose(losses, expected[2:], rtol=1e-4)
    assert int(to_numpy(resumed.optimizer.iterations)) == int(to_numpy(unbroken.optimizer.iterations)) == 12
    for a, b in zip(resumed.get_weights(), unbroken.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_nan_loss_stops_with_a_clear_message(tmp_path):
    images, labels = quadrant_data(64)
    images[5] = np.nan
    model = kd.tasks.DiffusionModel(small_backbone(), kd.diffusion.GaussianDiffusion(), seed=0)
    model.compile(optimizer="adam")
    checkpoint = keras.callbacks.ModelCheckpoint(str(tmp_path / "ckpt.keras"))
    with pytest.raises(FloatingPointError, match=r"training step 1 .*Lower the learning rate.*float32"):
        model.fit(images, labels, batch_size=32, epochs=1, shuffle=False, verbose=0, callbacks=[checkpoint])
    assert not (tmp_path / "ckpt.keras").exists()


def test_bad_training_input_is_refused_before_any_step():
    """Before: a learn_sigma mismatch trained (loss 1.01), [0, 255] images trained with loss 12,667, labels
    beyond num_classes gave NaN (JAX) or a GatherV2 error (TensorFlow), float labels were truncated."""
    with pytest.raises(ValueError, match=r"outputs 1 channels .* GaussianDiffusion\(learn_sigma=True\) reads 2"):
        kd.tasks.DiffusionModel(quadrant_backbone(learn_sigma=False), kd.diffusion.GaussianDiffusion(learn_sigma=True))
    with pytest.raises(ValueError, match="outputs 2 channels"):
        kd.tasks.DiffusionModel(quadrant_backbone(learn_sigma=True), kd.diffusion.RectifiedFlow())
    images, labels = quadrant_data(32)
    model = diffusion_model(kd.diffusion.RectifiedFlow())
    fit = dict(batch_size=32, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"values in \[0, 255\]; expected images in \[-1, 1\]"):
        model.fit(np.round((images + 1) * 127.5), labels, **fit)
    with pytest.raises(ValueError, match=r"labels must be integers in \[0, 4\].*got values in \[1, 7\]"):
        model.fit(images, np.where(labels == 0, 7, labels), **fit)
    with pytest.raises(ValueError, match="labels must be integers"):
        model.fit(images, labels + 0.5, **fit)

    class Pixels(keras.utils.PyDataset):  # a PyDataset's first batch is checked too
        def __len__(self):
            return 1

        def __getitem__(self, i):
            return np.round((images + 1) * 127.5), labels

    with pytest.raises(ValueError, match=r"values in \[0, 255\]"):
        model.fit(Pixels(), **fit)
    assert int(to_numpy(model.optimizer.iterations)) == 0


def test_bad_generate_arguments():
    model = kd.tasks.DiffusionModel(small_backbone(class_dropout_prob=0.0), kd.diffusion.GaussianDiffusion())
    with pytest.raises(ValueError, match="needs a null condition"):
        model.generate([0, 1], guidance_scale=3.0, num_steps=2)
    with pytest.raises(ValueError, match="negative_condition has batch 1"):
        model.generate([0, 1], negative_condition=[1], num_steps=2, guidance_scale=2.0)
    with pytest.raises(ValueError, match="num_images=3 does not match"):
        model.generate([0, 1], num_images=3, num_steps=2)
    with pytest.raises(ValueError, match="conditional"):
        model.generate(num_steps=2)
    with pytest.raises(ValueError, match="num_steps"):
        model.generate([0], num_steps=0)
    with pytest.raises(ValueError, match="num_steps"):
        model.generate([0], num_steps=5000)
    with pytest.raises(ValueError, match="sampler"):
        model.generate([0], sampler="plms")
    with pytest.raises(ValueError, match=r"integers in \[0, 3\]"):
        model.generate([0, 4], num_steps=2)
    with pytest.raises(ValueError, match="cfg_dropout=0.1 needs a null condition"):
        kd.tasks.DiffusionModel(quadrant_backbone(class_dropout_prob=0.0), kd.diffusion.GaussianDiffusion(),
                                cfg_dropout=0.1)


def test_cfg_dropout_sets_the_backbone_rate():
    model = kd.tasks.DiffusionModel(quadrant_backbone(), kd.diffusion.RectifiedFlow(), cfg_dropout=0.25)
    assert model.backbone.condition_embedding.dropout_prob == 0.25


def test_mixed_bfloat16_training_step_is_finite():
    with dtype_policy("mixed_bfloat16"):
        model = kd.tasks.DiffusionModel(tiny_backbone("DiT"), kd.diffusion.GaussianDiffusion(), seed=0)
        model.compile(optimizer=keras.optimizers.AdamW(1e-3))
        images = np.random.default_rng(0).uniform(-1, 1, (8, 8, 8, 3)).astype("float32")
        history = model.fit(images, np.arange(8) % 4, batch_size=4, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"][0])
    assert all(w.dtype == "float32" for w in model.backbone.weights)  # variables stay float32

"""The ``keras-dit`` subcommands, each a function of the validated config (and ``resume`` for training)."""

import contextlib
import importlib.util
import json
import os
import pickle
import tempfile
import time

import keras
import numpy as np
from PIL import Image

from keras_dit.cli import builders
from keras_dit.cli.config import load_config, to_yaml
from keras_dit.data.dataset import SkipBatches
from keras_dit.optimizers import GradientFilterEMA
from keras_dit.tasks import NaNLossGuard
from keras_dit.training_callbacks import (
    AtomicCheckpoint, LossCurve, SampleGrid, StopOnInterrupt, atomic_save, image_grid, remove_stale_temporaries,
    run_goes_on,
)

# Keys a resumed run may not change: they decide the steps per epoch and the data order (the epoch count of the
# checkpoint), or the optimizer's state variables. Optimizer hyper-parameters are applied instead (RESUME_APPLIED).
RESUME_FIXED = ("data.source", "data.batch_size", "data.limit", "seed", "data.latent_cache", "train.ema",
                "train.grokfast", "train.lr_schedule")
# config key -> attribute of the (inner) optimizer that a resumed run sets to the config's value
RESUME_APPLIED = {"train.learning_rate": "learning_rate", "train.weight_decay": "weight_decay",
                  "train.clipnorm": "clipnorm", "train.ema_momentum": "ema_momentum",
                  "train.ema_warmup": "ema_warmup"}
NAN_ADVICE = ("Lower the learning rate (--set train.learning_rate=...), clip gradients (--set train.clipnorm=1.0) "
              "or train in float32, then continue from the last checkpoint with --resume.")


def _say(message):
    print(f"keras-dit: {message}", flush=True)


def check_writable(folder, key):
    """Raise a one-line error now, before any work, when ``folder`` (config key ``key``) could not hold files: a
    file in its place or above it, a read-only folder. Writes nothing (a probe file is removed at once)."""
    folder = existing = os.path.abspath(folder)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise ValueError(f"{key} {folder!r} cannot be created: {existing!r} is a file, not a folder; choose another "
                         f"{key} (--set {key}=...)")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        raise ValueError(f"{key} {folder!r} is not writable ({error.strerror} in {existing!r}); choose another "
                         f"{key} (--set {key}=...)") from None


def _training_callbacks(config, checkpoint, steps_per_epoch, grid=None, log="log.csv", curve="loss.png",
                        tensorboard=True):
    """Checkpoint with its CSV log, Ctrl-C handling, NaN stop, TensorBoard, the sample grid, the loss curve."""
    out = config["output_dir"]
    log = os.path.join(out, log)
    callbacks = [NaNLossGuard(NAN_ADVICE), StopOnInterrupt(),
                 AtomicCheckpoint(checkpoint, config["train.checkpoint_every"], log=log,
                                  every_steps=config["train.checkpoint_every_steps"], steps_per_epoch=steps_per_epoch)]
    if config["train.tensorboard"] and tensorboard:
        if all(importlib.util.find_spec(package) for package in ("tensorflow", "tensorboard")):
            callbacks.append(keras.callbacks.TensorBoard(os.path.join(out, "tensorboard")))
        else:
            _say("TensorBoard logging is off: it needs the tensorflow and tensorboard packages (the CSV log is "
                 "in log.csv)")
    if grid is not None:
        callbacks.append(grid)
    callbacks.append(LossCurve(log, os.path.join(out, curve)))
    return callbacks


def _check_run(resume, checkpoint):
    """The checkpoint must exist for --resume and must not for a new run."""
    if os.path.exists(checkpoint) and not resume:
        raise ValueError(
            f"{checkpoint!r} already exists: pass --resume to continue that run, or choose another output_dir "
            "(--set output_dir=...)"
        )
    if resume and not os.path.exists(checkpoint):
        raise FileNotFoundError(f"--resume: there is no checkpoint {checkpoint!r} to continue; start without --resume")


def _start_run(config):
    """Record the config that runs in ``output_dir``/config.yaml; remove checkpoint files a killed write left."""
    out = config["output_dir"]
    os.makedirs(out, exist_ok=True)
    for path in remove_stale_temporaries(out):
        _say(f"removed {path}, left by an interrupted checkpoint write")
    with open(os.path.join(out, "config.yaml"), "w") as f:
        f.write(to_yaml(config))


def _check_resumable(config, loaded_optimizer, fresh_optimizer, fixed=RESUME_FIXED, applied=RESUME_APPLIED):
    """Refuse a resume that changes a key of ``fixed`` (compared with the run's config.yaml, and for EMA and
    Grokfast with the checkpoint's optimizer); apply changed optimizer settings (``applied``: config key ->
    optimizer attribute; Grokfast's alpha and lamb) to the loaded optimizer and say so."""
    previous_path = os.path.join(config["output_dir"], "config.yaml")
    was = load_config(previous_path) if os.path.isfile(previous_path) else {}
    inner = getattr(loaded_optimizer, "inner_optimizer", loaded_optimizer)
    grokfast = isinstance(loaded_optimizer, GradientFilterEMA), isinstance(fresh_optimizer, GradientFilterEMA)
    was["train.ema"] = bool(inner.use_ema)  # the checkpoint itself says these three
    was["train.lr_schedule"] = "constant" if _schedule(inner) is None else "cosine"
    if all(grokfast):
        was["train.grokfast"] = config["train.grokfast"]  # its alpha and lamb are applied below
    else:
        was["train.grokfast"] = {"alpha": loaded_optimizer.alpha, "lamb": loaded_optimizer.lamb} if grokfast[0] \
            else None
    for key in fixed:
        if key in was and was[key] != config[key]:
            raise ValueError(
                f"--resume cannot change {key} (the checkpoint was trained with {was[key]!r}, the config now says "
                f"{config[key]!r}): resume with --set {key}={_yaml_value(was[key])}, or start a new run in another "
                "output_dir (--set output_dir=...)"
            )
    fresh_inner = getattr(fresh_optimizer, "inner_optimizer", fresh_optimizer)
    if _schedule(inner) is not None:  # both have one (train.lr_schedule is fixed): compared whole, not its value now
        applied = {key: attribute for key, attribute in applied.items() if key != "train.learning_rate"}
        if _schedule(inner).get_config() != _schedule(fresh_inner).get_config():
            _say(f"--resume: the learning-rate schedule changed from {_described(_schedule(inner))} to "
                 f"{_described(_schedule(fresh_inner))}")
            inner.learning_rate = _schedule(fresh_inner)
    pairs = [(inner, fresh_inner, applied)]
    if all(grokfast):
        pairs.append((loaded_optimizer, fresh_optimizer, {"train.grokfast.alpha": "alpha",
                                                          "train.grokfast.lamb": "lamb"}))
    for loaded, fresh, attributes in pairs:
        for key, attribute in attributes.items():
            old, new = _setting(loaded, attribute), _setting(fresh, attribute)
            if old == new:
                continue
            if not hasattr(loaded, attribute):
                raise ValueError(f"--resume cannot set {key}: the checkpoint's {type(loaded).__name__} has no "
                                 f"{attribute}; start a new run in another output_dir (--set output_dir=...)")
            setattr(loaded, attribute, new)
            _say(f"--resume: {key} changed from {_shown(old)} to {_shown(new)}")


def _schedule(optimizer):
    """The optimizer's ``LearningRateSchedule``, or ``None`` for a constant learning rate."""
    rate = getattr(optimizer, "_learning_rate", None)  # the learning_rate property is the current value
    return rate if isinstance(rate, keras.optimizers.schedules.LearningRateSchedule) else None


def _described(schedule):
    config = schedule.get_config()
    return f"{type(schedule).__name__}({config['initial_learning_rate']:.6g} over {config['decay_steps']} steps)"


def _setting(optimizer, attribute):
    value = getattr(optimizer, attribute, None)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return float(keras.ops.convert_to_numpy(value))


def _shown(value):
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _yaml_value(value):
    return to_yaml({"v": value}).split(":", 1)[1].strip()


def _resume(checkpoint, fresh, config):
    """Load ``checkpoint`` for a resumed run, after ``_check_resumable``."""
    loaded = builders.load_diffusion_model(checkpoint)
    builders.check_same_model(loaded, fresh, checkpoint)
    _check_resumable(config, loaded.optimizer, fresh.optimizer)
    return loaded


def _fit(model, data, config, epochs_key, callbacks, checkpoint):
    """``model.fit`` on ``data`` (a data set with ``set_epoch``) up to epoch ``config[epochs_key]``, from the model's
    optimizer step (0 for a new run, the checkpoint's for a resumed one), as the uninterrupted run would: at a step
    in the middle of an epoch, first the rest of that epoch (``SkipBatches``, the same order), then the next epochs.
    The callbacks' end-of-run work waits for the last part (``run_goes_on``). The log row of the epoch resumed in its
    middle averages all its batches (``AtomicCheckpoint``); its TensorBoard and progress-bar values only those run
    after the resume."""
    steps, epochs = len(data), config[epochs_key]
    epoch, skip = divmod(int(keras.ops.convert_to_numpy(model.optimizer.iterations)), steps)
    if epoch or skip:
        _say(f"resuming {checkpoint} at epoch {epoch + 1}" + (f", batch {skip + 1} of {steps}" if skip else ""))
    if epoch >= epochs:
        _say(f"{checkpoint} has already trained {epoch} of {epochs_key}={epochs} epochs")
        return
    kwargs = dict(shuffle=False, verbose=config["train.verbose"], callbacks=callbacks)
    if skip:
        data.set_epoch(epoch)
        with run_goes_on(callbacks) if epoch + 1 < epochs else contextlib.nullcontext():
            model.fit(SkipBatches(data, skip), epochs=epoch + 1, initial_epoch=epoch, **kwargs)
        epoch += 1
    if epoch < epochs:
        data.set_epoch(epoch)
        model.fit(data, epochs=epochs, initial_epoch=epoch, **kwargs)


def _training_data(config):
    """(fit-ready data, the image data set it comes from, the VAE of ``model.autoencoder`` or None).

    Training on a latent cache needs the VAE the cache was written with (``model.autoencoder``): it checks the
    cache and is saved in the model, so a missing VAE file stops the run here, before any work."""
    dataset = builders.build_data(config)
    vae = builders.load_vae(config["model.autoencoder"], scaled=True) if config["model.autoencoder"] else None
    if not config["data.latent_cache"]:
        return dataset, dataset, vae
    from keras_dit.latent.latent_cache import read_latent_cache

    if vae is None:
        raise ValueError("data.latent_cache needs model.autoencoder (the VAE the cache was written with)")
    cache = read_latent_cache(config["data.latent_cache"], vae=vae, batch_size=config["data.batch_size"],
                              seed=config["seed"])
    return cache, dataset, vae


def sample_conditions(config, conditioner, dataset=None):
    """What to generate: (conditions or None, captions, npz fields, grid columns) from ``sample.*`` and the model's
    ``conditioner``: ``sample.labels`` (labels or class names), else each class ``sample.per_class`` times, else
    (tags, parameter vectors) the conditions of the data set's first examples."""
    if conditioner is None:
        return None, [str(i) for i in range(config["sample.num_images"])], {}, 10
    wanted = config["sample.labels"]
    try:
        conditions = conditioner.every_condition() if wanted is None else conditioner.encode(wanted)
    except ValueError as error:
        raise ValueError(f"sample.labels={wanted}: {error}") from None
    columns = config["sample.per_class"]
    if conditions is not None:
        conditions = np.repeat(conditions, columns, axis=0)
    else:
        dataset = dataset or builders.build_data(config, shuffle=False, drop_remainder=False)
        rows, index, columns = [], 0, 10
        while sum(len(r) for r in rows) < config["sample.num_images"] and index < len(dataset):
            rows.append(dataset[index][1])
            index += 1
        conditions = np.concatenate(rows)[: config["sample.num_images"]]
    names = {} if conditioner.names is None else {conditioner.fields[1]: np.array(conditioner.names)}
    return conditions, conditioner.captions(conditions), {conditioner.fields[0]: conditions, **names}, columns


def _guidance(config):
    """``generate``'s guidance arguments from ``sample.*``."""
    interval = config["sample.guidance_interval"]
    return dict(guidance_scale=config["sample.guidance_scale"],
                guidance_interval=None if interval is None else tuple(interval))


def _generate(model, config, conditions):
    """uint8 samples of ``sample.*``; a latent model decodes them with the VAE it holds."""
    kwargs = dict(num_steps=config["sample.num_steps"], sampler=builders.build_sampler(config, model.objective),
                  seed=config["sample.seed"])
    if conditions is None:
        kwargs["num_images"] = config["sample.num_images"]
    else:
        kwargs.update(condition=conditions, **_guidance(config))
    return model.generate(**kwargs)


def train(config, resume=False):
    """Train a DiffusionModel; returns the trained model."""
    checkpoint = os.path.join(config["output_dir"], "model.keras")
    check_writable(config["output_dir"], "output_dir")
    _check_run(resume, checkpoint)
    data, dataset, vae = _training_data(config)
    model = builders.build_model(config, dataset, vae)
    sampler = builders.build_sampler(config, model.objective)  # a sampler unfit for the objective fails here
    conditions, captions, _, _ = sample_conditions({**config, "sample.per_class": 1},
                                                   model.backbone.condition_embedding, dataset)
    if resume:
        model = _resume(checkpoint, model, config)
    _start_run(config)
    grid = None
    if config["train.sample_every"] > 0:
        grid = SampleGrid(os.path.join(config["output_dir"], "grids"), conditions, captions,
                          every=config["train.sample_every"], num_images=len(captions),
                          num_steps=config["sample.num_steps"], sampler=sampler,
                          **({} if conditions is None else _guidance(config)))
    _fit(model, data, config, "train.epochs", _training_callbacks(config, checkpoint, len(data), grid),
         checkpoint)
    _say(f"wrote {checkpoint}, log.csv and loss.png in {config['output_dir']}")
    return model


def sample(config, model=None, dataset=None):
    """Generate images: grid.png, images/*.png and samples.npz in ``sample.output``; returns the npz path.
    ``dataset``: where tag and parameter-vector conditions come from (default: the data of ``data.*``)."""
    checkpoint = builders.checkpoint_path(config)
    model = model or builders.load_diffusion_model(checkpoint)
    conditions, captions, fields, columns = sample_conditions(config, model.backbone.condition_embedding, dataset)
    out = config["sample.output"] or os.path.join(config["output_dir"], "samples")
    check_writable(out, "sample.output")
    images = _generate(model, config, conditions)
    return write_samples(out, images, captions, fields, columns=columns)


def write_samples(out, images, captions, fields, columns):
    """Write ``out``/grid.png, ``out``/images/*.png and ``out``/samples.npz (``images`` and ``fields``); returns the
    npz path."""
    os.makedirs(os.path.join(out, "images"), exist_ok=True)
    image_grid(images, captions, columns=min(len(images), columns)).save(os.path.join(out, "grid.png"))
    for i, (image, caption) in enumerate(zip(images, captions)):
        name = "".join(c if c.isalnum() or c in "-_" else "_" for c in caption)[:40]
        Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(
            os.path.join(out, "images", f"{i:05d}_{name}.png"))
    path = os.path.join(out, "samples.npz")
    np.savez(path, images=images, **fields)
    _say(f"wrote {len(images)} samples to {out} (grid.png, images/, samples.npz)")
    return path


def evaluate(config, model=None):
    """Score samples: class accuracy and Frechet distance for digits, PSNR and background accuracy against the true
    renders for alphabet (and those of the model's null-condition samples, the baseline), FID against
    ``evaluate.fid_reference``. ``model``: the model that made the samples (default: ``sample.checkpoint``)."""
    from keras_dit import metrics

    path = config["evaluate.samples"] or os.path.join(
        config["sample.output"] or os.path.join(config["output_dir"], "samples"), "samples.npz")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"samples file {path!r} does not exist; write it with keras-dit sample")
    with np.load(path) as npz:
        samples = {key: npz[key] for key in npz.files}
    if "images" not in samples:
        raise ValueError(f"{path!r} has no 'images' array; it was not written by keras-dit sample")
    results = {"samples": path, "num_images": int(len(samples["images"]))}
    if config["data.source"] == "digits":
        if "labels" not in samples:
            raise ValueError(f"{path!r} has no labels: the digits accuracy needs class-conditional samples")
        results["digits"] = metrics.evaluate_digits(samples["images"], samples["labels"])
    if config["data.source"] == "alphabet":
        results["alphabet"] = _evaluate_alphabet(config, samples, path, model)
    if config["evaluate.fid_reference"]:
        results["fid"] = metrics.fid(config["evaluate.fid_reference"], samples["images"],
                                     weights=config["evaluate.inception_weights"])
    if len(results) == 2:
        raise ValueError("nothing to evaluate: set evaluate.fid_reference to an image folder or .npz statistics "
                         "(digits and alphabet samples are scored without one)")
    report = os.path.join(os.path.dirname(path), "evaluation.json")
    with open(report, "w") as f:
        json.dump(results, f, indent=2)
    if "digits" in results:
        _say(f"digits: {results['digits']['accuracy']:.1%} of samples recognised as their class, Frechet "
             f"distance {results['digits']['frechet_distance']:.3f}")
    if "alphabet" in results:
        scores = results["alphabet"]
        _say(f"alphabet: PSNR to the true renders {scores['psnr']:.2f} dB (null-condition baseline "
             f"{scores['baseline_psnr']:.2f} dB), background colour right for {scores['background_accuracy']:.1%} "
             f"(baseline {scores['baseline_background_accuracy']:.1%}); "
             f"{scores['training_vectors']:.0%} of the vectors are in the training set")
    if "fid" in results:
        _say(f"FID {results['fid']:.3f}")
    _say(f"wrote {report}")
    return results


def _evaluate_alphabet(config, samples, path, model):
    """``metrics.evaluate_alphabet`` of the samples, with the baseline drawn from ``model`` for the null condition
    (same seed and sampler, no guidance; its grid is written as baseline.png beside the samples) and the share of
    the samples' parameter vectors found in the training set (0 for the demo's held-out vectors)."""
    from keras_dit import metrics

    if "params" not in samples:
        raise ValueError(f"{path!r} has no parameter vectors ('params'): the alphabet scores need samples written "
                         "by keras-dit sample from a model conditioned on parameters")
    params = samples["params"]
    model = model or builders.load_diffusion_model(builders.checkpoint_path(config))
    conditioner = model.backbone.condition_embedding
    baseline = _generate(model, {**config, "sample.guidance_scale": 1.0}, conditioner.null_condition(len(params)))
    image_grid(baseline, [f"#{i}" for i in range(len(baseline))], columns=10).save(
        os.path.join(os.path.dirname(path), "baseline.png"))
    training = builders.build_data(config, shuffle=False, drop_remainder=False).condition
    seen = {row.tobytes() for row in np.asarray(training, dtype=np.float32)}
    return {**metrics.evaluate_alphabet(samples["images"], params, baseline),
            "training_vectors": float(np.mean([row.tobytes() in seen for row in params.astype(np.float32)]))}


def _latent_stages(config, resume):
    """The latent demo's first stages: train the VAE, measure its scale factor, cache the latents; returns
    the wall seconds of each."""
    stages = [("VAE training", lambda: train_vae(config, resume)), ("scale factor", lambda: scale_factor(config))]
    if config["data.latent_cache"]:
        stages.append(("latent cache", lambda: cache_latents(config)))
    seconds = {}
    for name, stage in stages:
        start = time.time()
        stage()
        seconds[name] = time.time() - start
    return seconds


def real_digits_frechet_distance(labels, image_size, draws=5, seed=0):
    """The Frechet distance to all real digits of real digits with the classes of ``labels`` (one drawn per label,
    without replacement), averaged over ``draws`` draws: the floor a perfect model's samples would reach at that
    sample size (the estimate is biased upwards for small N, and varies by ~+-0.05 between draws at N = 500)."""
    from keras_dit import metrics
    from keras_dit.data.builtin import digits_arrays

    images, real_labels = digits_arrays(image_size, 1, "all")
    rng = np.random.default_rng(seed)
    distances = []
    for _ in range(draws):
        index = np.concatenate([rng.choice(np.flatnonzero(real_labels == c), np.sum(labels == c), replace=False)
                                for c in np.unique(labels)])
        distances.append(metrics.evaluate_digits(images[index], real_labels[index])["frechet_distance"])
    return float(np.mean(distances))


def demo(config, resume=False):
    """Train a conditional model on a built-in data set, sample it, score the samples, write report.txt: the digits
    (every class, scored by the digits classifier) or the alphabet (held-out parameter vectors, scored against
    their true renders and against the model's null-condition samples).

    With ``model.autoencoder`` (presets ``latent-digits``, ``latent-alphabet``) it is the whole latent pipeline:
    train-vae, scale-factor, cache-latents (when ``data.latent_cache`` is set), then train and sample in the
    latents."""
    if config["data.source"] not in ("digits", "alphabet"):
        raise ValueError(f"the demo trains on the built-in digits or alphabet; data.source is "
                         f"{config['data.source']!r}")
    seconds = _latent_stages(config, resume) if config["model.autoencoder"] else {}
    start = time.time()
    with builders.distribution_scope(config):
        model = train(config, resume)
        distributed = keras.distribution.distribution() is not None
    if distributed:  # sample on one device: with replicated weights every device would draw every image
        model = builders.load_diffusion_model(os.path.join(config["output_dir"], "model.keras"))
    trained = time.time()
    alphabet = config["data.source"] == "alphabet"
    sample(config, model, _held_out_alphabet(config) if alphabet else None)
    evaluation = evaluate(config, model)
    seconds.update({"DiT training": trained - start, "sampling and scoring": time.time() - trained})
    out = config["output_dir"]
    space = f"the latents of a KL-VAE ({config['model.autoencoder']})" if config["model.autoencoder"] else "pixels"
    report = _alphabet_report if alphabet else _digits_report
    lines = [
        *report(config, evaluation, space),
        f"backend: {keras.backend.backend()}; " + ", ".join(f"{name} {s:.0f} s" for name, s in seconds.items())
        + f" (total {sum(seconds.values()):.0f} s)",
        f"files: {out}/samples/grid.png, {out}/loss.png, {out}/samples/samples.npz, {out}/model.keras",
    ]
    with open(os.path.join(out, "report.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return evaluation["alphabet" if alphabet else "digits"]


def _held_out_alphabet(config):
    """``sample.num_images`` Alphabet images with parameter vectors drawn from seed ``seed + 1``: none of them is
    in the training set (seed ``seed``), so the demo scores generalisation, not memory."""
    from keras_dit.data import alphabet

    return alphabet(config["sample.num_images"], config["data.image_size"], seed=config["seed"] + 1,
                    batch_size=config["data.batch_size"], shuffle=False, drop_remainder=False)


def _digits_report(config, evaluation, space):
    results = evaluation["digits"]
    with np.load(evaluation["samples"]) as npz:
        floor = real_digits_frechet_distance(npz["labels"], config["data.image_size"])
    return [
        f"keras-dit demo: class-conditional DiT on scikit-learn's digits, in {space}",
        f"samples recognised as their class: {results['accuracy']:.1%} of {results['num_images']} "
        f"(the classifier scores {results['classifier_test_accuracy']:.1%} on held-out real digits)",
        "per class: " + ", ".join(f"{k} {v:.0%}" for k, v in results["per_class_accuracy"].items()),
        f"Frechet distance to the real digits (classifier features; lower is more like them in variety and "
        f"shape): {results['frechet_distance']:.3f}, where {results['num_images']} real digits of the same classes "
        f"score {floor:.3f} ({results['frechet_distance'] / floor:.1f}x that floor)",
    ]


def _alphabet_report(config, evaluation, space):
    scores = evaluation["alphabet"]
    return [
        f"keras-dit demo: DiT conditioned on the 27 Alphabet-challenge parameters, in {space}",
        f"{scores['num_images']} samples for parameter vectors not in the training set "
        f"({scores['training_vectors']:.0%} are), against the true renders of those vectors; baseline: the same "
        "model with the null condition (it ignores the parameters)",
        f"PSNR: {scores['psnr']:.2f} dB conditioned, {scores['baseline_psnr']:.2f} dB baseline "
        f"(+{scores['psnr_margin']:.2f} dB)",
        f"background colour (border median) within {scores['tolerance']:.0f}/255 on every channel: "
        f"{scores['background_accuracy']:.1%} conditioned, {scores['baseline_background_accuracy']:.1%} baseline "
        f"(mean worst-channel error {scores['background_error']:.1f} vs {scores['baseline_background_error']:.1f})",
        f"grids: {config['output_dir']}/samples/grid.png (conditioned), {config['output_dir']}/samples/baseline.png",
    ]


def train_vae(config, resume=False):
    """Train a KL-VAE on the images of ``data.*``; writes ``vae.checkpoint``."""
    from keras_dit.losses import VGGPerceptualLoss
    from keras_dit.models import KLVAE
    from keras_dit.tasks import VAETrainer

    out = config["output_dir"]
    path = config["vae.checkpoint"] or os.path.join(out, "vae.keras")
    state = os.path.join(out, "vae_trainer.keras")
    check_writable(out, "output_dir")
    _check_run(resume, state)
    dataset = builders.build_data({**config, "data.batch_size": config["vae.batch_size"] or config["data.batch_size"]})
    keras.utils.set_random_seed(config["seed"])
    vae = KLVAE.from_preset(config["vae.preset"], in_channels=dataset.image_shape[-1], seed=config["seed"])
    weight = config["vae.perceptual_weight"]
    perceptual = VGGPerceptualLoss(weights=config["vae.perceptual_weights"]) if weight else None
    trainer = VAETrainer(vae, perceptual_weight=weight, kl_weight=config["vae.kl_weight"], perceptual=perceptual)
    trainer.compile(optimizer=keras.optimizers.Adam(config["vae.learning_rate"]))
    if resume:
        trainer = builders.load_checkpoint(state)
        if not isinstance(trainer, VAETrainer):
            raise ValueError(f"{state!r} holds a {type(trainer).__name__}, not a VAETrainer")
        _check_resumable(config, trainer.optimizer, keras.optimizers.Adam(config["vae.learning_rate"]),
                         fixed=RESUME_FIXED[:4], applied={"vae.learning_rate": "learning_rate"})
    _start_run(config)
    _fit(trainer, dataset, config, "vae.epochs",
         _training_callbacks(config, state, len(dataset), log="vae_log.csv", curve="vae_loss.png", tensorboard=False),
         state)
    atomic_save(trainer.vae, path)
    _say(f"wrote {path}")
    return trainer.vae


def _vae_and_data(config, scaled=False):
    """(VAE path, the VAE of ``vae.checkpoint``, the data of ``data.*`` in order), checked to fit each other
    (``scaled``: and the VAE's scale factor measured)."""
    path = config["vae.checkpoint"] or os.path.join(config["output_dir"], "vae.keras")
    vae = builders.load_vae(path, scaled)
    dataset = builders.build_data(config, shuffle=False, drop_remainder=False)
    height, width, channels = dataset.image_shape
    factor = vae.downsampling_factor
    if channels != vae.in_channels or height % factor or width % factor:
        raise ValueError(
            f"the VAE {path!r} encodes {vae.in_channels}-channel images with sides divisible by {factor}, but the "
            f"data are {height}x{width}x{channels} (data.channels={channels}, data.image_size="
            f"{config['data.image_size']}): use the data settings the VAE was trained with, or train a VAE on "
            "these images (keras-dit train-vae)"
        )
    return path, vae, dataset


def scale_factor(config):
    """Measure 1 / std of the VAE's latents on ``data.*`` (``vae.per_channel``: and their mean, per channel)
    and store it in the VAE file."""
    from keras_dit.latent.scale_factor import compute_scale_factor

    path, vae, dataset = _vae_and_data(config)
    per_channel = config["vae.per_channel"]
    factor = compute_scale_factor(vae, dataset, per_channel=per_channel, shift=per_channel,
                                  verbose=config["train.verbose"])
    atomic_save(vae, path)
    shift = "" if vae.shift_factor is None else f", shift {np.round(vae.shift_factor, 4).tolist()}"
    _say(f"scale factor {np.round(factor, 4).tolist()}{shift} stored in {path}")
    return factor


def cache_latents(config):
    """Encode ``data.*`` with the VAE once and write the latents (and conditions) to ``vae.cache``."""
    from keras_dit.latent.latent_cache import write_latent_cache

    _, vae, dataset = _vae_and_data(config, scaled=True)
    path = config["vae.cache"] or os.path.join(config["output_dir"], "latents.npz")
    write_latent_cache(vae, dataset, path, batch_size=config["data.batch_size"], verbose=config["train.verbose"])
    _say(f"wrote {path}; train on it with --set data.latent_cache={path}")
    return path


def convert(config):
    """Convert a diffusers folder or a reference DiT checkpoint into a ``.keras`` file."""
    from keras_dit import convert as kd_convert

    source, output = config["convert.source"], config["convert.output"]
    if not source or not output:
        raise ValueError("convert needs convert.source and convert.output (--set convert.source=... "
                         "--set convert.output=model.keras)")
    if not os.path.exists(source):
        raise FileNotFoundError(f"convert.source {source!r} does not exist")
    if config["convert.format"] == "diffusers":
        model = kd_convert.from_diffusers(source)
    else:
        overrides = {} if config["convert.input_size"] is None else {"input_size": config["convert.input_size"]}
        try:
            model = kd_convert.from_dit_checkpoint(source, config["convert.preset"], **overrides)
        except pickle.UnpicklingError as error:  # torch.load(weights_only=True) refuses pickled Python objects
            raise ValueError(
                f"convert.source {source!r} holds Python objects besides weights, which are not loaded for safety "
                f"({str(error).splitlines()[0][:120]}); if you trust the file, save its state dict alone: "
                "torch.save(torch.load(path, weights_only=False)['ema'], 'ema.pt')"
            ) from None
    atomic_save(model, output)
    _say(f"wrote {output} ({type(model).__name__}, {model.count_params():,} parameters)")
    return output

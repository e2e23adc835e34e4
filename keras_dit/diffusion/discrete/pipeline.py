"""Train and sample discrete-state diffusion models from a config (``configs/discrete/digits.yaml``).

The config has the reference's sections and names (``data.S``, ``model.rate_sigma``, ``loss.nll_weight``,
``sampler.num_steps``, ...). ``run_config(config, "train" | "sample", output_dir)`` is what ``keras-dit train`` /
``keras-dit sample`` call for a config whose ``model`` section has a ``rate`` key.
"""

import copy
import difflib
import os

import keras
import numpy as np
import yaml

from keras_dit.diffusion.discrete.objective import DiscreteCTMC
from keras_dit.diffusion.discrete.samplers import DISCRETE_SAMPLERS
from keras_dit.diffusion.guidance import guided_model_fn
from keras_dit.diffusion.schedules import check_choice

# Kept apart from the `keras-dit` presets (configs/*.yaml): it has the reference's own schema.
DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "configs", "discrete",
                              "digits.yaml")
OBJECTIVE_KEYS = ("rate", "rate_const", "rate_sigma", "Q_sigma", "time_exponential", "time_base")
HEAD_KEYS = ("parameterization", "fix_logistic", "input_encoding", "data_min_max")


def load_config(config=None, overrides=None):
    """The default config updated with ``config`` (a dict or a YAML path) and ``overrides`` ({"a.b": value}).

    Unknown sections or keys raise a ValueError naming the closest valid key.
    """
    with open(DEFAULT_CONFIG) as f:
        merged = yaml.safe_load(f)
    if isinstance(config, (str, os.PathLike)):
        if not os.path.isfile(config):
            raise FileNotFoundError(f"Config file {config!r} does not exist; pass a YAML file path or a dict.")
        with open(config) as f:
            config = yaml.safe_load(f) or {}
    updates = [((section, key), value) for section, values in (config or {}).items()
               for key, value in _section(section, values).items()]
    updates += [(tuple(path.split(".", 1)), value) for path, value in (overrides or {}).items()]
    for path, value in updates:
        if len(path) != 2:
            raise ValueError(f"Config keys are 'section.key', got {'.'.join(path)!r}.")
        section, key = path
        for name, valid in ((section, merged), (key, merged.get(section, {}))):
            if name not in valid:
                close = difflib.get_close_matches(name, list(valid), n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise ValueError(f"Unknown config key {section}.{key}.{hint} Valid: {', '.join(valid)}.")
        merged[section][key] = value
    return merged


def _section(section, values):
    if not isinstance(values, dict):
        raise ValueError(f"Config section {section!r} must be a mapping of keys to values, got {values!r}.")
    return values


def build_model(config):
    """The ``DiffusionModel`` (``CategoricalBackbone`` + ``DiscreteCTMC``) a config describes, compiled."""
    from keras_dit import models
    from keras_dit.tasks import DiffusionModel

    data, spec, loss = config["data"], config["model"], config["loss"]
    kind = check_choice("model.backbone", spec["backbone"], ("DiT", "UViT"))
    inner = getattr(models, kind)(
        input_size=data["image_size"], patch_size=spec["patch_size"], in_channels=spec["width"],
        hidden_size=spec["hidden_size"], depth=spec["depth"], num_heads=spec["num_heads"], num_classes=10,
        class_dropout_prob=spec["class_dropout_prob"], seed=config["training"]["seed"],
    )
    backbone = models.CategoricalBackbone(inner, data["S"], 1, **{k: spec[k] for k in HEAD_KEYS})
    objective = DiscreteCTMC(data["S"], **{k: spec[k] for k in OBJECTIVE_KEYS}, **loss)
    model = DiffusionModel(backbone, objective, seed=config["training"]["seed"])
    training = config["training"]
    model.compile(optimizer=keras.optimizers.AdamW(
        training["learning_rate"], weight_decay=0.0, clipnorm=training["clipnorm"], use_ema=training["use_ema"]
    ))
    return model


def train(config, output_dir=None, verbose=1):
    """Fit a model on ``config["data"]``; saves ``output_dir/model.keras`` when given. Returns (model, history)."""
    from keras_dit.data import load_builtin

    config = load_config(config)
    keras.utils.set_random_seed(config["training"]["seed"])
    data = config["data"]
    dataset = load_builtin(data["name"], image_size=data["image_size"], batch_size=data["batch_size"],
                           seed=config["training"]["seed"])
    model = build_model(config)
    history = model.fit(dataset, epochs=config["training"]["epochs"], verbose=verbose)
    if output_dir is not None:
        os.makedirs(output_dir, exist_ok=True)
        model.save(os.path.join(output_dir, "model.keras"))
    return model, history


def get_sampler(sampler_config):
    """A ``TauLeaping`` / ``DiscreteEuler`` from a config's ``sampler`` section."""
    name = check_choice("sampler.name", sampler_config["name"], tuple(DISCRETE_SAMPLERS))
    options = ("min_t", "num_corrector_steps", "corrector_step_size_multiplier", "corrector_entry_time")
    return DISCRETE_SAMPLERS[name](**{k: sampler_config[k] for k in options})


def generate(model, condition, sampler, num_steps, guidance_scale=1.0, negative_condition=None, seed=None):
    """uint8 (B, H, W, C) samples of a discrete ``DiffusionModel``, classifier-free guided on the logits.

    ``DiffusionModel.generate`` guides only the first C output channels; discrete logits need all S guided,
    hence this function (see the report's suggested one-line change).
    """
    cond, uncond, batch = model._sampling_conditions(condition, negative_condition, guidance_scale, None)
    shape = (batch, *model.backbone.input["x"].shape[1:])
    noise = keras.random.normal(shape, seed=None if seed is None else int(seed))
    model_fn = guided_model_fn(model._predict, cond, uncond, guidance_scale)
    with model.ema_weights():
        images = sampler.sample(model_fn, noise, num_steps, model.objective,
                                seed=None if seed is None else int(seed) + 1)
    return np.clip(np.round((keras.ops.convert_to_numpy(images) + 1.0) * 127.5), 0, 255).astype("uint8")


def sample(config, model, output_dir=None):
    """Generate ``num_images_per_class`` digits per class; returns (images, labels, report dict).

    The report has the digits classifier's class accuracy (``kd.metrics.evaluate_digits``) for digits data.
    ``output_dir`` gets ``samples.npz`` (uint8 ``images``, ``labels``).
    """
    config = load_config(config)
    spec = config["sampler"]
    labels = np.repeat(np.arange(10), spec["num_images_per_class"]).astype("int32")
    images = generate(model, labels, get_sampler(spec), spec["num_steps"], spec["guidance_scale"], seed=spec["seed"])
    report = {}
    if config["data"]["name"] == "digits":
        from keras_dit.metrics import evaluate_digits

        report = evaluate_digits(images, labels)
    if output_dir is not None:
        os.makedirs(output_dir, exist_ok=True)
        np.savez(os.path.join(output_dir, "samples.npz"), images=images, labels=labels)
    return images, labels, report


def run_config(config, command, output_dir=None, checkpoint=None):
    """``"train"``: fit, save, then sample and report; ``"sample"``: load ``checkpoint`` and sample."""
    config = load_config(copy.deepcopy(config))
    check_choice("command", command, ("train", "sample"))
    if command == "train":
        model, _ = train(config, output_dir)
    else:
        if checkpoint is None or not os.path.isfile(checkpoint):
            raise FileNotFoundError(f"Checkpoint {checkpoint!r} does not exist; train first or pass a .keras file.")
        model = keras.saving.load_model(checkpoint)
    return sample(config, model, output_dir)[2]

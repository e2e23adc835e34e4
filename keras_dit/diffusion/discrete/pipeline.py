"""Train and sample discrete-state diffusion models from a config (``configs/discrete/digits.yaml``).

A discrete config says ``kind: discrete`` at its top level and has the reference's sections and names
(``data.S``, ``model.rate_sigma``, ``loss.nll_weight``, ``sampler.num_steps``, ...), not the ``keras-dit`` schema.
``keras-dit train -c discrete-digits`` / ``keras-dit sample -c discrete-digits`` run it (``keras_dit.cli``); in
Python, ``load_config``, ``train`` and ``sample`` do the same work without writing files.
"""

import difflib
import os

import keras
import numpy as np
import yaml

from keras_dit.diffusion.discrete.objective import DiscreteCTMC
from keras_dit.diffusion.discrete.samplers import DISCRETE_SAMPLERS
from keras_dit.validation import check_choice

# Kept apart from the `keras-dit` presets (configs/*.yaml): it has the reference's own schema.
DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "configs", "discrete",
                              "digits.yaml")
OBJECTIVE_KEYS = ("rate", "rate_const", "rate_sigma", "Q_sigma", "time_exponential", "time_base")
HEAD_KEYS = ("parameterization", "fix_logistic", "input_encoding", "data_min_max")
_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string", list: "a list"}


def load_config(config=None, overrides=None):
    """The default config updated with ``config`` (a dict or a YAML path) and ``overrides``.

    ``overrides`` maps dotted keys to values: ``{"sampler.num_steps": 20, "output_dir": "runs/x"}``. An unknown
    key raises a ValueError naming the closest valid one; a value must have its default's type (an integer
    may stand for a number; keys whose default is null take anything).
    """
    with open(DEFAULT_CONFIG) as f:
        merged = yaml.safe_load(f)
    source = "the config"
    if isinstance(config, (str, os.PathLike)):
        source = f"config file {str(config)!r}"
        if not os.path.isfile(config):
            raise FileNotFoundError(f"Config file {str(config)!r} does not exist; pass a YAML file path or a dict.")
        with open(config) as f:
            config = yaml.safe_load(f)
    if not isinstance(config or {}, dict):
        raise ValueError(f"{source} must be a mapping of sections to keys, got {type(config).__name__}.")
    updates = [(key, value, source) for key, value in _flatten(config or {}, merged, source)]
    updates += [(key, value, "the overrides") for key, value in (overrides or {}).items()]
    for key, value, where in updates:
        _set(merged, key, value, where)
    if merged["kind"] != "discrete":
        raise ValueError(f"A discrete config has kind: discrete, got kind: {merged['kind']!r}.")
    return merged


def _flatten(config, defaults, source):
    """(dotted key, value) pairs of a nested config; sections are the mappings of the defaults."""
    for name, values in config.items():
        if isinstance(defaults.get(name), dict):
            if not isinstance(values, dict):
                raise ValueError(f"Section {name!r} in {source} must be a mapping of keys to values, got {values!r}.")
            yield from ((f"{name}.{key}", value) for key, value in values.items())
        else:
            yield name, values


def _set(merged, key, value, source):
    valid = [f"{name}.{leaf}" if isinstance(values, dict) else name for name, values in merged.items()
             for leaf in (values if isinstance(values, dict) else [None])]
    if key not in valid:
        leaf = key.rsplit(".", 1)[-1]  # the right key in the wrong section finds its section
        close = [k for k in valid if k.rsplit(".", 1)[-1] == leaf][:1] or difflib.get_close_matches(key, valid, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(valid)}"
        raise ValueError(f"Unknown discrete config key {key!r} in {source}{hint}")
    section, _, leaf = key.rpartition(".")
    target = merged[section] if section else merged
    default = target[leaf]
    if default is not None:
        kind = type(default)
        if kind is float and isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        ok = isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            raise ValueError(f"{key} in {source} must be {_TYPE_NAMES[kind]}, got {value!r}.")
    target[leaf] = value


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


def train(config, verbose=None, callbacks=None):
    """Fit the model a config describes on its ``data`` (a built-in data set). Returns (model, history)."""
    from keras_dit.data import load_builtin

    config = load_config(config)
    training, data = config["training"], config["data"]
    keras.utils.set_random_seed(training["seed"])
    dataset = load_builtin(data["name"], image_size=data["image_size"], batch_size=data["batch_size"],
                           seed=training["seed"])
    model = build_model(config)
    history = model.fit(dataset, epochs=training["epochs"], steps_per_epoch=training["steps_per_epoch"],
                        verbose=training["verbose"] if verbose is None else verbose, callbacks=callbacks)
    return model, history


def get_sampler(sampler_config):
    """A ``TauLeaping`` / ``DiscreteEuler`` from a config's ``sampler`` section."""
    name = check_choice("sampler.name", sampler_config["name"], tuple(DISCRETE_SAMPLERS))
    options = ("min_t", "num_corrector_steps", "corrector_step_size_multiplier", "corrector_entry_time")
    return DISCRETE_SAMPLERS[name](**{k: sampler_config[k] for k in options})


def sample(config, model):
    """``num_images_per_class`` samples of every class: (uint8 images (N, H, W, 1), labels (N,), report).

    For digits the report is ``kd.metrics.evaluate_digits`` (class accuracy, Frechet distance), else empty.
    """
    config = load_config(config)
    spec = config["sampler"]
    labels = np.repeat(np.arange(10), spec["num_images_per_class"]).astype("int32")
    images = model.generate(labels, num_steps=spec["num_steps"], sampler=get_sampler(spec),
                            guidance_scale=spec["guidance_scale"], seed=spec["seed"])
    report = {}
    if config["data"]["name"] == "digits":
        from keras_dit.metrics import evaluate_digits

        report = evaluate_digits(images, labels)
    return images, labels, report

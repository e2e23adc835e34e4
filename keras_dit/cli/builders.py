"""Config -> objects: the data set, the backbone and objective, the compiled model, checkpoints."""

import os

import keras

from keras_dit import data as kd_data
from keras_dit import distribution as kd_distribution
from keras_dit.data.builtin import BUILTIN_DATASETS
from keras_dit.diffusion import DiscreteCTMC, GaussianDiffusion, RectifiedFlow
from keras_dit.diffusion.samplers import default_sampler, get_sampler
from keras_dit.models import CategoricalBackbone, DiT, KLVAE, UViT
from keras_dit.tasks import DiffusionModel

# Architecture of a backbone when neither the config nor a preset says otherwise (the digits demo's).
ARCHITECTURE_DEFAULTS = {"patch_size": 2, "hidden_size": 128, "depth": 4, "num_heads": 4, "mlp_ratio": 4.0}
# discrete.* keys taken by the CategoricalBackbone, the DiscreteCTMC objective and the discrete samplers
DISCRETE_HEAD = ("input_encoding", "data_min_max", "parameterization", "fix_logistic")
DISCRETE_OBJECTIVE = ("rate", "rate_const", "rate_sigma", "Q_sigma", "time_exponential", "time_base", "nll_weight",
                      "eps_ratio", "min_time")
DISCRETE_SAMPLER = ("min_t", "num_corrector_steps", "corrector_step_size_multiplier", "corrector_entry_time")


def checkpoint_path(config):
    return config["sample.checkpoint"] or os.path.join(config["output_dir"], "model.keras")


def build_data(config, shuffle=True, drop_remainder=True):
    """The training data set of ``config``: a built-in set or an image folder (``keras.utils.PyDataset``)."""
    source = config["data.source"]
    common = dict(batch_size=config["data.batch_size"], seed=config["seed"], shuffle=shuffle,
                  drop_remainder=drop_remainder)
    if source in BUILTIN_DATASETS:
        options = dict(image_size=config["data.image_size"], flip=config["data.flip"], **common)
        if source != "alphabet":
            options["channels"] = config["data.channels"]
        dataset = kd_data.load_builtin(source, **options)
        limit = config["data.limit"]
        if limit is not None:
            if limit < 1:
                raise ValueError(f"data.limit must be >= 1, got {limit}")
            dataset = kd_data.ArrayDataset(
                dataset.images[:limit], dataset.condition[:limit], dataset.condition_kind,
                class_names=dataset.class_names, tag_vocabulary=dataset.tag_vocabulary,
                param_names=dataset.param_names, flip=config["data.flip"], **common,
            )
        return dataset
    if config["data.limit"] is not None:
        raise ValueError("data.limit applies to built-in data sets only; point data.source at a smaller folder")
    if not os.path.exists(source):
        raise FileNotFoundError(
            f"data.source {source!r} is neither a built-in data set ({', '.join(sorted(BUILTIN_DATASETS))}) "
            "nor an existing image folder"
        )
    return kd_data.ImageFolder(
        source, config["data.image_size"], condition=config["data.condition"], tags_file=config["data.tags_file"],
        params_file=config["data.params_file"], channels=config["data.channels"], crop=config["data.crop"],
        flip=config["data.flip"], workers=config["data.workers"], **common,
    )


def conditioner_config(dataset, dropout_prob):
    """The ``get_conditioner`` dict of ``dataset``'s conditions, with their vocabulary (class names, tags, parameter
    names): the model saves it, so ``model.keras`` alone maps names to conditions. ``None`` for no conditions."""
    kind = dataset.condition_kind
    if kind == "labels":
        names = dataset.class_names
        spec = {"kind": "labels", "num_classes": len(names), "label_names": names}
    elif kind == "tags":
        spec = {"kind": "tags", "vocabulary": dataset.tag_vocabulary}
    elif kind == "params":
        names = dataset.param_names
        spec = {"kind": "parameters", "num_parameters": len(names), "parameter_names": names}
    else:
        return None
    return {**spec, "dropout_prob": dropout_prob}


def load_vae(path, scaled=False):
    """A ``KLVAE`` from a ``.keras`` file, with a clear error for a missing file or another kind of model;
    ``scaled``: also one for a VAE whose scale factor was never measured (what latent diffusion needs)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"VAE file {path!r} does not exist; train one with keras-dit train-vae (it writes "
                                "vae.checkpoint) or point vae.checkpoint / model.autoencoder at yours")
    vae = load_checkpoint(path)
    if not isinstance(vae, KLVAE):
        raise ValueError(f"{path!r} holds a {type(vae).__name__}, not a KLVAE; pass a VAE written by train-vae")
    if scaled and vae.scale_factor is None:
        raise ValueError(f"the VAE {path!r} has no scale factor; measure it first with keras-dit scale-factor "
                         "(same config), which stores it in the file")
    return vae


def build_backbone(config, shape, conditioner):
    """The backbone for inputs of ``shape`` (H, W, C) and the data's ``conditioner`` (``conditioner_config``)."""
    if shape[0] != shape[1]:
        raise ValueError(f"Backbones take square inputs; the data are {shape[0]} x {shape[1]}")
    architecture = {key: config[f"model.{key}"] for key in ARCHITECTURE_DEFAULTS if config[f"model.{key}"] is not None}
    cls = {"dit": DiT, "uvit": UViT}[config["model.backbone"]]
    if config["model.preset"] is None:
        architecture = {**ARCHITECTURE_DEFAULTS, **architecture}
    kwargs = dict(input_size=shape[0], in_channels=shape[-1], seed=config["seed"], conditioner=conditioner,
                  **architecture)
    if config["model.preset"] is not None:
        kwargs["num_classes"] = None  # the data's conditioner replaces a preset's label count
    if cls is DiT:
        kwargs["learn_sigma"] = False
    kwargs.update({key: config[f"model.{key}"] for key in ("norm_type", "mlp_type", "qk_norm", "rope")})
    if config["model.preset"] is not None:
        return cls.from_preset(config["model.preset"], **kwargs)
    return cls(**kwargs)


def _discrete(config, keys):
    return {key: config[f"discrete.{key}"] for key in keys}


def build_categorical_backbone(config, shape, conditioner):
    """objective.kind=discrete: a ``CategoricalBackbone`` of ``discrete.*`` around the backbone of ``model.*``,
    which denoises ``discrete.width`` feature channels."""
    if config["model.autoencoder"] or config["repa.encoder"]:
        raise ValueError("objective.kind=discrete models the pixel states themselves: unset model.autoencoder and "
                         "repa.encoder (--set model.autoencoder=null --set repa.encoder=null)")
    inner = build_backbone(config, (*shape[:-1], config["discrete.width"]), conditioner)
    return CategoricalBackbone(inner, config["discrete.num_states"], shape[-1], **_discrete(config, DISCRETE_HEAD))


def build_sampler(config, objective):
    """The sampler of ``sample.sampler`` (default: the objective's usual one) for ``objective``; discrete ones
    with the ``discrete.*`` sampling options."""
    sampler = get_sampler(config["sample.sampler"] or default_sampler(objective), objective)  # checks the fit
    return type(sampler)(**_discrete(config, DISCRETE_SAMPLER)) if isinstance(objective, DiscreteCTMC) else sampler


def build_objective(config):
    if config["objective.kind"] == "discrete":
        return DiscreteCTMC(config["discrete.num_states"], **_discrete(config, DISCRETE_OBJECTIVE))
    if config["objective.kind"] == "rectified_flow":
        return RectifiedFlow(timestep_sampling=config["objective.timestep_sampling"],
                             direction_weight=config["objective.direction_weight"],
                             direction_axes=config["objective.direction_axes"])
    return GaussianDiffusion(schedule=config["objective.schedule"], prediction=config["objective.prediction"],
                             min_snr_gamma=config["objective.min_snr_gamma"])


def build_model(config, dataset, autoencoder=None):
    """The compiled ``DiffusionModel`` of ``config`` for ``dataset``: in pixel space, or in the latents of the
    ``model.autoencoder`` VAE (``autoencoder``, if already loaded), which the model holds whether it trains on
    images or on a latent cache, so its ``model.keras`` makes images alone."""
    image_shape = tuple(dataset.image_shape)
    if config["model.autoencoder"]:
        autoencoder = autoencoder or load_vae(config["model.autoencoder"], scaled=True)
        shape = autoencoder.latent_shape((1, *image_shape))[1:]
    else:
        if config["data.latent_cache"]:
            raise ValueError("data.latent_cache needs model.autoencoder (the VAE the cache was written with)")
        shape = image_shape
    keras.utils.set_random_seed(config["seed"])
    build = build_categorical_backbone if config["objective.kind"] == "discrete" else build_backbone
    backbone = build(config, shape, conditioner_config(dataset, config["model.class_dropout_prob"]))
    model = DiffusionModel(backbone, build_objective(config), autoencoder=autoencoder, seed=config["seed"],
                           repa=build_repa(config))
    compile_model(model, config, steps_per_epoch=len(dataset))
    return model


def build_repa(config):
    """``kd.losses.REPA`` around the frozen encoder file ``repa.encoder``, or ``None`` when it is unset."""
    path = config["repa.encoder"]
    if path is None:
        return None
    from keras_dit.losses import REPA

    return REPA(load_checkpoint(path), block=config["repa.block"], weight=config["repa.weight"],
                projector_hidden_size=config["repa.projector_hidden_size"])


def distribution_scope(config):
    """The multi-device context of ``distribution.*`` on the current backend (a null context for type none):
    the model is built, compiled, trained and saved inside it."""
    kind, devices = config["distribution.type"], config["distribution.devices"]
    if kind == "none" and config["distribution.split_cpu"]:
        cores = kd_distribution.host_cpu_devices(config["data.batch_size"])
        if cores:
            kind, devices = "data_parallel", len(cores)
    return kd_distribution.distribution_scope(kind, devices, config["distribution.model_axis"],
                                              batch_size=config["data.batch_size"])


def build_learning_rate(config, steps_per_epoch):
    """``train.learning_rate``, or with ``train.lr_schedule: cosine`` a Keras ``CosineDecay`` from it to 0 over
    ``train.epochs`` epochs of ``steps_per_epoch`` steps (a function of the optimizer's step count, so a resumed
    run continues it)."""
    if config["train.lr_schedule"] == "constant":
        return config["train.learning_rate"]
    return keras.optimizers.schedules.CosineDecay(config["train.learning_rate"],
                                                  decay_steps=config["train.epochs"] * steps_per_epoch)


def build_optimizer(config, steps_per_epoch):
    """The optimizer of ``train.*`` for an epoch of ``steps_per_epoch`` steps: keras_dit's AdamW (EMA with
    warm-up), wrapped by Grokfast's filter when ``train.grokfast`` is set."""
    from keras_dit.optimizers import AdamW, GradientFilterEMA

    optimizer = AdamW(
        build_learning_rate(config, steps_per_epoch), weight_decay=config["train.weight_decay"],
        clipnorm=config["train.clipnorm"],
        use_ema=config["train.ema"], ema_momentum=config["train.ema_momentum"], ema_warmup=config["train.ema_warmup"],
    )
    grokfast = config["train.grokfast"]
    return optimizer if grokfast is None else GradientFilterEMA(optimizer, **grokfast)


def compile_model(model, config, steps_per_epoch):
    model.compile(optimizer=build_optimizer(config, steps_per_epoch))


def load_checkpoint(path):
    """A model saved as ``.keras``, with one-line errors for a missing or unreadable file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint {path!r} does not exist; train a model first (keras-dit train)")
    try:
        return keras.saving.load_model(path)
    except (ValueError, OSError, KeyError, TypeError) as error:
        raise ValueError(f"cannot load checkpoint {path!r}: {' '.join(str(error).split())[:300]}") from None


def load_diffusion_model(path):
    model = load_checkpoint(path)
    if not isinstance(model, DiffusionModel):
        raise ValueError(
            f"checkpoint {path!r} holds a {type(model).__name__}, not a DiffusionModel; pass a model written by "
            "keras-dit train"
        )
    return model


def check_same_model(loaded, fresh, path):
    """Raise if checkpoint ``loaded`` was trained with another architecture or objective than ``fresh``."""
    def describe(model):
        return {"backbone": type(model.backbone).__name__,
                "input": tuple(model.backbone.input["x"].shape[1:]),
                "parameters": model.backbone.count_params(),
                "objective": {"class": type(model.objective).__name__, **model.objective.get_config()}}

    old, new = describe(loaded), describe(fresh)
    diff = [f"{key} {old[key]} vs {new[key]}" for key in old if old[key] != new[key]]
    if diff:
        raise ValueError(
            f"checkpoint {path!r} is from another model ({'; '.join(diff)}: checkpoint vs config); resume with the "
            "config it was trained with, or choose a new output_dir"
        )

"""The ``keras-dit`` configuration: one schema of dotted keys, YAML files and presets over it, ``--set`` overrides.

A config is a nested YAML mapping (``model: {depth: 4}``) whose leaves are the keys of ``SCHEMA``
(``model.depth``). Loading merges, in order: the schema's defaults, the config file (a path, or the name of a
preset shipped in ``keras_dit/configs``), then every ``--set key=value`` (the value parsed as YAML, so ``4`` is
an int, ``true`` a bool, ``null`` None and ``[1, 2]`` a list). The result is validated before any work starts:
an unknown key names the closest valid one, a wrong type says what was expected, a number out of its range
names the range (``train.epochs`` >= 1, ``train.learning_rate`` > 0, probabilities in [0, 1], ...).
"""

import difflib
import os
from typing import NamedTuple

import yaml

PRESET_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "configs")


class Option(NamedTuple):
    """One config key: its default, the kind of value it takes, and the help line ``--help`` prints."""

    default: object
    kind: str  # "int", "float", "bool", "str", "list" or "grokfast"
    help: str
    nullable: bool = False
    choices: tuple = ()
    range: str = ""  # numbers: ">= 1", "> 0", "[0, 1]" or "[0, 1)"


def _o(default, kind, help, nullable=False, choices=(), range=""):
    return Option(default, kind, help, nullable, tuple(choices), range)


def in_range(value, spec):
    """Whether number ``value`` lies in ``spec`` (``">= 1"``, ``"> 0"``, ``"[0, 1]"``, ``"[0, 1)"``; ``""``: any)."""
    if not spec:
        return True
    if spec.startswith(">"):
        bound = float(spec.lstrip(">= "))
        return value >= bound if spec.startswith(">=") else value > bound
    low, high = (float(b) for b in spec[1:-1].split(","))
    return low <= value and (value <= high if spec.endswith("]") else value < high)


SCHEMA = {
    "output_dir": _o("runs/keras-dit", "str", "folder of the run: checkpoint, logs, sample grids, reports"),
    "seed": _o(0, "int", "seed of the model's initialisation, noise draws and data order", range=">= 0"),
    # Data
    "data.source": _o("digits", "str", "a built-in data set (digits, alphabet, synthetic) or an image folder"),
    "data.image_size": _o(16, "int", "image side in pixels (images are resized and cropped to it)", range=">= 1"),
    "data.channels": _o(1, "int", "1 (grayscale) or 3 (RGB)", choices=(1, 3)),
    "data.condition": _o("labels", "str", "image folders: labels (sub-folder names), tags, params, or null",
                         nullable=True, choices=("labels", "tags", "params")),
    "data.tags_file": _o(None, "str", "image folders: CSV of file,tags (default: a sidecar .txt per image)",
                         nullable=True),
    "data.params_file": _o(None, "str", "image folders: CSV or .npz of parameter vectors", nullable=True),
    "data.crop": _o("center", "str", "image folders: center or random crop", choices=("center", "random")),
    "data.flip": _o(False, "bool", "mirror images left-right at random"),
    "data.batch_size": _o(64, "int", "examples per training batch", range=">= 1"),
    "data.limit": _o(None, "int", "built-in data sets: use only the first N examples (quick trials)",
                     nullable=True, range=">= 1"),
    "data.workers": _o(4, "int", "image folders: batches decoded in parallel", range=">= 1"),
    "data.latent_cache": _o(None, "str", "train on latents written by cache-latents instead of images",
                            nullable=True),
    # Model
    "model.backbone": _o("dit", "str", "denoising backbone", choices=("dit", "uvit")),
    "model.preset": _o(None, "str", "backbone preset (e.g. DiT-S/2); the keys below override it", nullable=True),
    "model.patch_size": _o(None, "int", "side of the square patches (default: the preset's, else 2)",
                           nullable=True, range=">= 1"),
    "model.hidden_size": _o(None, "int", "transformer width (default: the preset's, else 128)",
                            nullable=True, range=">= 1"),
    "model.depth": _o(None, "int", "transformer blocks, odd for uvit (default: the preset's, else 4)",
                      nullable=True, range=">= 1"),
    "model.num_heads": _o(None, "int", "attention heads (default: the preset's, else 4)", nullable=True, range=">= 1"),
    "model.mlp_ratio": _o(None, "float", "MLP expansion of each block (default: the preset's, else 4)",
                          nullable=True, range="> 0"),
    "model.norm_type": _o("layer", "str", "token norm: layer (the paper's) or rms (RMSNorm)", choices=("layer", "rms")),
    "model.mlp_type": _o("gelu", "str", "MLP: gelu (the paper's) or swiglu (same parameters)",
                         choices=("gelu", "swiglu")),
    "model.qk_norm": _o(False, "bool", "RMS-normalise queries and keys in every attention"),
    "model.rope": _o(False, "bool", "2D rotary position embedding of the patch grid in every attention"),
    "model.class_dropout_prob": _o(0.1, "float", "condition dropout for classifier-free guidance (0 disables CFG)",
                                   range="[0, 1)"),
    "model.autoencoder": _o(None, "str", "a KL-VAE .keras file (from train-vae): diffusion runs in its latents",
                            nullable=True),
    # Objective
    "objective.kind": _o("rectified_flow", "str", "training objective (discrete: categorical pixels, the discrete.* "
                         "keys)", choices=("rectified_flow", "gaussian", "discrete")),
    "objective.prediction": _o("v", "str", "gaussian: what the model predicts", choices=("eps", "v", "x0")),
    "objective.schedule": _o("linear", "str", "gaussian: beta schedule (linear, cosine, ...)"),
    "objective.min_snr_gamma": _o(None, "float", "gaussian: Min-SNR loss weighting gamma (e.g. 5.0)",
                                  nullable=True, range="> 0"),
    "objective.timestep_sampling": _o("uniform", "str", "rectified_flow: training times",
                                      choices=("uniform", "logit_normal")),
    "objective.direction_weight": _o(0.0, "float", "rectified_flow: weight of LightningDiT's velocity-direction "
                                     "(cosine) loss term (0: off)", range=">= 0"),
    "objective.direction_axes": _o("channels", "str", "rectified_flow: the cosine per pixel over channels, or over "
                                   "each whole sample (for 1-4 channel inputs)", choices=("channels", "sample")),
    # Discrete-state diffusion (objective.kind=discrete): a CategoricalBackbone around model.backbone, DiscreteCTMC
    "discrete.num_states": _o(4, "int", "states per pixel channel: images are quantised to this many levels",
                              range=">= 2"),
    "discrete.width": _o(32, "int", "feature channels between the state embedding, the backbone and the head",
                         range=">= 1"),
    "discrete.input_encoding": _o("embedding", "str", "embedding (a learned vector per state) or ordinal (the "
                                  "centred value)", choices=("embedding", "ordinal")),
    "discrete.data_min_max": _o(None, "list", "ordinal encoding: [low, high] states mapped to [-1, 1] (default "
                                "[0, num_states - 1])", nullable=True),
    "discrete.parameterization": _o("logits", "str", "head: free logits or logistic (ordinal, truncated "
                                    "discretised logistic)", choices=("logits", "logistic")),
    "discrete.fix_logistic": _o(False, "bool", "logistic head: the numerically safer of two ways to a bin's mass"),
    "discrete.rate": _o("gaussian", "str", "forward rate matrix: gaussian (ordinal states) or uniform",
                        choices=("gaussian", "uniform")),
    "discrete.rate_const": _o(1.0, "float", "uniform rate: the jump rate", range="> 0"),
    "discrete.rate_sigma": _o(6.0, "float", "gaussian rate: jump-length scale", range="> 0"),
    "discrete.Q_sigma": _o(512.0, "float", "gaussian rate: width of the stationary distribution", range="> 0"),
    "discrete.time_exponential": _o(100.0, "float", "gaussian rate: beta(t) = time_base log(time_exponential) "
                                    "time_exponential^t", range="> 0"),
    "discrete.time_base": _o(3.0, "float", "gaussian rate: see time_exponential (3.0 in the reference, S = 256)",
                             range="> 0"),
    "discrete.nll_weight": _o(0.001, "float", "weight of the direct cross-entropy to x0 beside the ELBO",
                              range=">= 0"),
    "discrete.eps_ratio": _o(1e-9, "float", "added to ratios of transition probabilities", range="> 0"),
    "discrete.min_time": _o(0.01, "float", "training times uniform in [min_time, 1]", range="[0, 1)"),
    "discrete.min_t": _o(0.01, "float", "sampling: the last model time; x0 is the argmax there", range="[0, 1)"),
    "discrete.num_corrector_steps": _o(0, "int", "sampling: corrector jumps per step below corrector_entry_time",
                                       range=">= 0"),
    "discrete.corrector_step_size_multiplier": _o(1.5, "float", "sampling: corrector step relative to the "
                                                  "predictor's", range="> 0"),
    "discrete.corrector_entry_time": _o(0.1, "float", "sampling: time below which correctors run", range="[0, 1]"),
    # REPA representation alignment (train)
    "repa.encoder": _o(None, "str", "a frozen encoder .keras file, images in [-1, 1] -> (B, N, E) patch features: "
                       "turns REPA on", nullable=True),
    "repa.block": _o(1, "int", "index of the transformer block whose tokens are aligned", range=">= 0"),
    "repa.weight": _o(0.5, "float", "weight of the alignment loss", range=">= 0"),
    "repa.projector_hidden_size": _o(256, "int", "width of REPA's MLP projector", range=">= 1"),
    # Training
    "train.epochs": _o(30, "int", "epochs to train (a resumed run continues up to this many)", range=">= 1"),
    "train.learning_rate": _o(1e-3, "float", "AdamW learning rate", range="> 0"),
    "train.lr_schedule": _o("constant", "str", "the learning rate over the run: constant, or cosine (from "
                            "train.learning_rate down to 0 at the last step of train.epochs)",
                            choices=("constant", "cosine")),
    "train.weight_decay": _o(0.0, "float", "AdamW weight decay", range=">= 0"),
    "train.clipnorm": _o(None, "float", "clip each gradient to this norm", nullable=True, range="> 0"),
    "train.ema": _o(True, "bool", "keep an exponential moving average of the weights and sample with it"),
    "train.ema_momentum": _o(0.99, "float", "EMA momentum (the decay it warms up to, see train.ema_warmup)",
                             range="[0, 1)"),
    "train.ema_warmup": _o(True, "bool", "EMA decay min(ema_momentum, (1 + n) / (10 + n)) at step n, so early "
                                         "grids and short runs sample well; false: ema_momentum from the start"),
    "train.grokfast": _o(None, "grokfast", "Grokfast gradient filter, {alpha: 0.98, lamb: 2.0} (null: off)",
                         nullable=True),
    "train.checkpoint_every": _o(1, "int", "write <output_dir>/model.keras every N epochs (atomically)", range=">= 1"),
    "train.checkpoint_every_steps": _o(0, "int", "also write model.keras every N optimizer steps, mid-epoch too, so "
                                                 "a killed run resumes at that step (0: off)", range=">= 0"),
    "train.sample_every": _o(5, "int", "write a labelled sample grid every N epochs (0: never)", range=">= 0"),
    "train.tensorboard": _o(True, "bool", "TensorBoard logs in <output_dir>/tensorboard (needs the tensorflow and "
                                          "tensorboard packages; skipped with a note without them)"),
    "train.verbose": _o(1, "int", "Keras progress: 1 progress bar, 2 one line per epoch, 0 silent",
                        choices=(0, 1, 2)),
    # Multi-device training (train)
    "distribution.type": _o("none", "str", "none, data_parallel (jax: keras.distribution, tensorflow: "
                            "MirroredStrategy) or model_parallel (jax only; transformer weights sharded)",
                            choices=("none", "data_parallel", "model_parallel")),
    "distribution.devices": _o(None, "int", "devices to use, the first N (default: all); --devices N sets it",
                               nullable=True, range=">= 1"),
    "distribution.model_axis": _o(2, "int", "model_parallel: devices along the model axis (divides devices)",
                                  range=">= 1"),
    "distribution.split_cpu": _o(False, "bool", "jax, no accelerator, type none: train data parallel over one "
                                 "device per CPU core (about 1.3x faster on 2 cores)"),
    # Sampling
    "sample.checkpoint": _o(None, "str", "model to sample (default <output_dir>/model.keras)", nullable=True),
    "sample.labels": _o(None, "list", "class labels (ints or class names) to draw; default every class",
                        nullable=True),
    "sample.per_class": _o(10, "int", "images per label", range=">= 1"),
    "sample.num_images": _o(16, "int", "unconditional models: images to draw", range=">= 1"),
    "sample.num_steps": _o(20, "int", "sampler steps", range=">= 1"),
    "sample.sampler": _o(None, "str", "ddpm, ddim, euler, heun, dpm_solver (DPM-Solver++ 2M) or unipc; discrete: "
                         "tau_leaping or euler (default: ddim for gaussian, euler for flow, tau_leaping for "
                         "discrete)", nullable=True,
                         choices=("ddpm", "ddim", "euler", "heun", "dpm_solver", "unipc", "tau_leaping")),
    "sample.guidance_scale": _o(2.0, "float", "classifier-free guidance scale (1: none)", range=">= 0"),
    "sample.guidance_interval": _o(None, "interval", "guide only at noise levels in [lo, hi] (0 data, 1 noise), "
                                   "the conditional prediction elsewhere; null: every step", nullable=True),
    "sample.seed": _o(0, "int", "seed of the sampling noise", range=">= 0"),
    "sample.output": _o(None, "str", "folder for grid.png, images/ and samples.npz (default <output_dir>/samples)",
                        nullable=True),
    # Evaluation
    "evaluate.samples": _o(None, "str", "samples.npz to score (default <sample.output>/samples.npz)", nullable=True),
    "evaluate.fid_reference": _o(None, "str", "real images for FID: an image folder or an .npz of mu/sigma",
                                 nullable=True),
    "evaluate.inception_weights": _o("imagenet", "str", "InceptionV3 weights for FID: imagenet or a local .h5"),
    # KL-VAE (train-vae, scale-factor, cache-latents)
    "vae.preset": _o("kl-f4-tiny", "str", "KLVAE preset (kl-f4-tiny, kl-f4-demo, kl-f2-rgb, kl-f4, kl-f8, kl-f16)"),
    "vae.checkpoint": _o(None, "str", "the VAE .keras file (default <output_dir>/vae.keras)", nullable=True),
    "vae.epochs": _o(10, "int", "VAE training epochs", range=">= 1"),
    "vae.batch_size": _o(None, "int", "VAE training batch (default: data.batch_size)", nullable=True, range=">= 1"),
    "vae.learning_rate": _o(1e-4, "float", "VAE Adam learning rate", range="> 0"),
    "vae.kl_weight": _o(1e-6, "float", "weight of the KL term", range=">= 0"),
    "vae.perceptual_weight": _o(0.0, "float", "weight of the VGG19 perceptual term (0 skips VGG)", range=">= 0"),
    "vae.perceptual_weights": _o("imagenet", "str", "VGG19 weights: imagenet or a local .h5 file"),
    "vae.per_channel": _o(False, "bool", "scale-factor: a shift (mean) and scale (1 / std) per latent channel "
                          "instead of one 1 / std for all (Stable Diffusion's)"),
    "vae.cache": _o(None, "str", "latent cache written by cache-latents (default <output_dir>/latents.npz)",
                    nullable=True),
    # Conversion
    "convert.source": _o(None, "str", "a diffusers save_pretrained folder, or a reference DiT .pt/.safetensors/.npz",
                         nullable=True),
    "convert.format": _o("diffusers", "str", "what source is", choices=("diffusers", "dit")),
    "convert.preset": _o("DiT-XL/2", "str", "dit format: the checkpoint's architecture"),
    "convert.input_size": _o(None, "int", "dit format: latent side (64 for 512 px models)",
                             nullable=True, range=">= 1"),
    "convert.output": _o(None, "str", "the .keras file to write", nullable=True),
}

_KIND_NAMES = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string",
               "list": "a list", "grokfast": "a mapping {alpha: 0.98, lamb: 2.0}",
               "interval": "a pair [lo, hi] with 0 <= lo <= hi <= 1"}
GROKFAST_KEYS = {"alpha": "[0, 1)", "lamb": ">= 0"}  # train.grokfast: the filter's EMA momentum and amplification


def _check_grokfast(key, value, source):
    unknown = sorted(set(value) - set(GROKFAST_KEYS))
    if unknown or not value:
        raise ValueError(f"{key} in {source} takes the keys {sorted(GROKFAST_KEYS)} (e.g. "
                         f"--set {key}={{alpha: 0.98, lamb: 2.0}}), got {value!r}")
    checked = {"alpha": 0.98, "lamb": 2.0}
    for name, number in value.items():
        if isinstance(number, bool) or not isinstance(number, (int, float)) or not in_range(number,
                                                                                           GROKFAST_KEYS[name]):
            raise ValueError(f"{key}.{name} in {source} must be a number {GROKFAST_KEYS[name]}, got {number!r}")
        checked[name] = float(number)
    return checked


def presets():
    """Names of the config presets shipped in ``keras_dit/configs``."""
    return sorted(f[:-5] for f in os.listdir(PRESET_DIR) if f.endswith(".yaml"))


def _suggest(key, valid):
    leaf = key.rsplit(".", 1)[-1]  # the right key in the wrong section ("train.depth") finds "model.depth"
    close = [k for k in valid if k.rsplit(".", 1)[-1] == leaf][:1] or difflib.get_close_matches(key, valid, n=1,
                                                                                                cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else "; valid keys are listed by --help"


def _flatten(mapping, source, prefix=""):
    flat = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        sections = {k.split(".", 1)[0] for k in SCHEMA if "." in k}
        if isinstance(value, dict) and name in sections:
            flat.update(_flatten(value, source, name + "."))
        else:
            flat[name] = value
    return flat


def _is_interval(value):
    """A ``[lo, hi]`` list of numbers with 0 <= lo <= hi <= 1 (``sample.guidance_interval``)."""
    numbers = isinstance(value, list) and len(value) == 2 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    return numbers and 0 <= value[0] <= value[1] <= 1


def _check(key, value, source):
    if key not in SCHEMA:
        raise ValueError(f"unknown config key {key!r} in {source}{_suggest(key, list(SCHEMA))}")
    option = SCHEMA[key]
    if option.kind == "float" and isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as a string
        try:
            value = float(value)
        except ValueError:
            pass
    if value is None:
        if not option.nullable:
            raise ValueError(f"{key} in {source} may not be null: expected {_KIND_NAMES[option.kind]}")
        return None
    ok = {
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, (int, float)) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
        "str": isinstance(value, (str, int, float)) and not isinstance(value, bool),
        "list": isinstance(value, list),
        "grokfast": isinstance(value, dict),
        "interval": _is_interval(value),
    }[option.kind]
    if not ok:
        raise ValueError(
            f"{key} in {source} must be {_KIND_NAMES[option.kind]}, got {value!r} ({type(value).__name__})"
        )
    if option.kind == "grokfast":
        return _check_grokfast(key, value, source)
    if option.kind == "interval":
        return [float(v) for v in value]
    value = float(value) if option.kind == "float" else str(value) if option.kind == "str" else value
    if option.choices and value not in option.choices:
        raise ValueError(f"{key} in {source} must be one of {list(option.choices)}, got {value!r}")
    if option.kind in ("int", "float") and not in_range(value, option.range):
        raise ValueError(f"{key} in {source} must be {option.range}, got {value!r}")
    return value


def _read_yaml(path):
    try:
        with open(path, encoding="utf-8") as f:
            content = yaml.safe_load(f)
    except yaml.YAMLError as error:
        raise ValueError(f"config file {path!r} is not valid YAML: {' '.join(str(error).split())}") from None
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise ValueError(f"config file {path!r} must hold a mapping of keys (e.g. 'model: {{depth: 4}}'), "
                         f"got a {type(content).__name__}")
    return content


def resolve_config_path(name):
    """A config argument -> a file: an existing path, or a preset name (``digits``, ``discrete-digits``)."""
    if os.path.isfile(name):
        return name
    preset = os.path.join(PRESET_DIR, f"{name}.yaml")
    if os.sep not in name and "/" not in name and os.path.isfile(preset):
        return preset
    raise FileNotFoundError(f"config file {name!r} does not exist; pass a YAML file or a preset name "
                            f"({', '.join(presets())})")


def parse_override(text):
    """``"model.depth=6"`` -> ``("model.depth", 6)``, the value parsed as YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"--set takes key=value (e.g. --set train.epochs=5), got {text!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def load_config(name=None, overrides=()):
    """The validated flat config: defaults <- the config file or preset ``name`` <- ``overrides`` (``key=value``)."""
    config = {key: option.default for key, option in SCHEMA.items()}
    if name is not None:
        path = resolve_config_path(name)
        for key, value in _flatten(_read_yaml(path), repr(path)).items():
            config[key] = _check(key, value, f"config file {path!r}")
    for text in overrides:
        key, value = parse_override(text)
        config[key] = _check(key, value, "--set")
    return config


def schema_help(sections):
    """The help text listing every key of ``sections`` with its default."""
    lines = []
    for key, option in SCHEMA.items():
        if key.split(".", 1)[0] in sections or "." not in key:
            choices = f" ({'|'.join(map(str, option.choices))})" if option.choices else ""
            choices += f" ({option.range})" if option.range else ""
            default = yaml.safe_dump(option.default, default_flow_style=True).removesuffix("...\n").strip()
            lines.append(f"  {key} = {default}{choices}\n      {option.help}")
    return "\n".join(lines)


def to_yaml(config):
    """The flat config as nested YAML (what a run writes to <output_dir>/config.yaml)."""
    nested = {}
    for key, value in config.items():
        section, _, leaf = key.rpartition(".")
        (nested.setdefault(section, {}) if section else nested)[leaf] = value
    return yaml.safe_dump(nested, sort_keys=False)

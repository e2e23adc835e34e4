"""``from_diffusers``: turn a diffusers model (a module or a saved directory) into its keras_dit twin."""

import os

# diffusers class name -> converter(module) -> keras_dit model. Each converter module registers itself here.
CONVERTERS = {}


def register(class_name):
    def decorator(fn):
        CONVERTERS[class_name] = fn
        return fn

    return decorator


def _load_directory(path):
    import json

    import diffusers

    config_path = os.path.join(path, "config.json")
    if not os.path.exists(config_path):
        raise FileNotFoundError(f"{path!r} is not a saved diffusers model: it has no config.json.")
    with open(config_path) as f:
        class_name = json.load(f).get("_class_name")
    if class_name not in CONVERTERS:
        raise ValueError(f"{path!r} holds a {class_name}; convertible classes: {', '.join(sorted(CONVERTERS))}.")
    return getattr(diffusers, class_name).from_pretrained(path)


def from_diffusers(model_or_path):
    """A keras_dit model with the same outputs as the diffusers ``model_or_path``.

    Supported: ``DiTTransformer2DModel`` -> ``DiT`` and ``AutoencoderKL`` -> ``KLVAE``. A path is a directory
    written by diffusers' ``save_pretrained``.
    """
    if isinstance(model_or_path, (str, os.PathLike)):
        model_or_path = _load_directory(os.fspath(model_or_path))
    class_name = type(model_or_path).__name__
    if class_name not in CONVERTERS:
        raise ValueError(
            f"Cannot convert a {class_name}; convertible diffusers classes: {', '.join(sorted(CONVERTERS))}."
        )
    return CONVERTERS[class_name](model_or_path)

"""Every numeric argument of the public Python constructors and functions that a config key maps to is checked
at the call, with a message naming the argument, the bad value and the range (the CLI schema checks the keys
first, with its own messages). Before, ``DiT(depth=0)``, ``DiffusionModel(cfg_dropout=1.5)``,
``AdamW(learning_rate=-1)``, ``VAETrainer(kl_weight=-1)`` or ``generate(guidance_scale=-1)`` went through,
and ``num_heads=0`` or ``patch_size=0`` failed with ``ZeroDivisionError``."""

import functools

import keras
import numpy as np
import pytest

import keras_dit as kd
from tests.helpers import tiny_backbone


def vae(**kwargs):
    return kd.models.KLVAE.from_preset("kl-f4-tiny", **kwargs)


def diffusion_model(**kwargs):
    return kd.tasks.DiffusionModel(tiny_backbone("DiT"), kd.diffusion.RectifiedFlow(), **kwargs)


def generate(**kwargs):
    return diffusion_model().generate(condition=np.array([0, 1]), num_steps=2, **kwargs)


def vae_trainer(**kwargs):
    return kd.tasks.VAETrainer(vae(), **{"perceptual_weight": 0.0, **kwargs})


def scale_factor(**kwargs):
    return kd.compute_scale_factor(vae(in_channels=1), np.zeros((4, 8, 8, 1), "float32"), verbose=0, **kwargs)


def categorical(**kwargs):
    return kd.models.CategoricalBackbone(tiny_backbone("DiT", in_channels=8), 5, **kwargs)


def repa(**kwargs):
    images = keras.Input((8, 8, 3))
    return kd.losses.REPA(keras.Model(images, keras.layers.Reshape((64, 3))(images)), **kwargs)


DiT, UViT, ReiMei = (functools.partial(tiny_backbone, name) for name in ("DiT", "UViT", "ReiMei"))
MISSING = "no-such-folder"  # the arguments are checked before the folder is read

CASES = [
    (DiT, {"depth": 0}, "depth must be an integer >= 1, got 0"),
    (DiT, {"hidden_size": 0}, "hidden_size must be an integer >= 1, got 0"),
    (DiT, {"num_heads": 0}, "num_heads must be an integer >= 1, got 0"),
    (DiT, {"patch_size": 0}, "patch_size must be an integer >= 1, got 0"),
    (DiT, {"input_size": 0}, "input_size must be an integer >= 1, got 0"),
    (DiT, {"in_channels": 0}, "in_channels must be an integer >= 1, got 0"),
    (DiT, {"mlp_ratio": 0.0}, "mlp_ratio must be a positive number, got 0.0"),
    (UViT, {"depth": -1}, "depth must be an integer >= 1, got -1"),
    (UViT, {"num_heads": 0}, "num_heads must be an integer >= 1, got 0"),
    (ReiMei, {"num_single_layers": 0}, "num_single_layers must be an integer >= 1, got 0"),
    (ReiMei, {"num_double_layers": -1}, "num_double_layers must be an integer >= 0, got -1"),
    (ReiMei, {"mlp_ratio": (1.0, -2.0)}, "mlp_ratio must be a positive number, got -2.0"),
    (categorical, {"in_channels": 0}, "in_channels must be an integer >= 1, got 0"),
    (vae, {"base_channels": 0}, "base_channels must be an integer >= 1, got 0"),
    (vae, {"norm_groups": 0}, "norm_groups must be an integer >= 1, got 0"),
    (vae, {"channel_multipliers": (1, 0)}, "channel_multipliers entry must be an integer >= 1, got 0"),
    (diffusion_model, {"cfg_dropout": 1.5}, r"cfg_dropout must be in \[0, 1\), got 1.5"),
    (generate, {"guidance_scale": -1.0}, "guidance_scale must be a number >= 0, got -1.0"),
    (vae_trainer, {"kl_weight": -1.0}, "kl_weight must be a number >= 0, got -1.0"),
    (vae_trainer, {"perceptual_weight": -1.0}, "perceptual_weight must be a number >= 0, got -1.0"),
    (scale_factor, {"batch_size": 0}, "batch_size must be an integer >= 1, got 0"),
    (scale_factor, {"max_batches": 0}, "max_batches must be an integer >= 1, got 0"),
    (kd.optimizers.AdamW, {"learning_rate": -1.0}, "learning_rate must be a positive number, got -1.0"),
    (kd.optimizers.AdamW, {"weight_decay": -0.1}, "weight_decay must be a number >= 0, got -0.1"),
    (kd.optimizers.AdamW, {"clipnorm": 0.0}, "clipnorm must be a positive number or None, got 0.0"),
    (kd.optimizers.AdamW, {"use_ema": True, "ema_momentum": 1.0}, r"ema_momentum must be in \[0, 1\), got 1.0"),
    (kd.data.ArrayDataset, {"images": np.zeros((4, 8, 8, 1)), "batch_size": 2, "workers": 0},
     "workers must be an integer >= 1, got 0"),
    (kd.data.ImageFolder, {"directory": MISSING, "image_size": 8, "min_tag_count": 0},
     "min_tag_count must be an integer >= 1, got 0"),
    (kd.conditioning.ClassConditioner, {"num_classes": 4, "hidden_size": 0}, "hidden_size must be an integer >= 1"),
    (kd.conditioning.TagConditioner, {"vocabulary": ["a", "b"], "hidden_size": 8, "num_heads": 0},
     "num_heads must be an integer >= 1, got 0"),
    (kd.conditioning.ParameterConditioner, {"num_parameters": 2, "hidden_size": 8, "mlp_ratio": -1.0},
     "mlp_ratio must be a positive number, got -1.0"),
    (repa, {"projector_hidden_size": 0}, "REPA projector_hidden_size must be an integer >= 1, got 0"),
    (kd.losses.VGGPerceptualLoss, {"weights": None, "layers": ("block1_conv2",), "layer_weights": [-1.0]},
     "layer_weights entry must be a number >= 0, got -1.0"),
]


def _id(case):
    build, kwargs, _ = case
    name = getattr(build, "__name__", None) or getattr(build, "args", ["?"])[0]
    return f"{name}-{'-'.join(f'{k}={v}' for k, v in kwargs.items() if k not in ('images', 'directory'))}"


@pytest.mark.parametrize("build, kwargs, message", CASES, ids=[_id(case) for case in CASES])
def test_an_argument_out_of_range_is_named_with_its_range(build, kwargs, message):
    with pytest.raises(ValueError, match=message):
        build(**kwargs)


def test_values_in_range_still_build():
    """The edges of the ranges pass: 0 mixer and double layers, 0 tag encoder layers, a learning-rate schedule."""
    assert tiny_backbone("ReiMei", num_mixer_layers=0, num_double_layers=0).count_params() > 0
    kd.conditioning.TagConditioner(["a", "b"], 8, num_layers=0)
    schedule = keras.optimizers.schedules.ExponentialDecay(1e-3, 10, 0.9)
    assert kd.optimizers.AdamW(schedule, use_ema=True, ema_momentum=0.0).ema_momentum == 0.0

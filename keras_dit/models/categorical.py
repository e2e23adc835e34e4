"""``CategoricalBackbone``: a DiT / U-ViT over categorical pixels, for discrete-state diffusion (``DiscreteCTMC``).

The wrapped backbone works on ``width`` feature channels per pixel: a discrete input embedding turns the
(B, H, W, C) states into those features, the backbone denoises them, and a per-pixel head turns its output into
logits of ``p(x0 | x_t)``, shape (B, H, W, C, S). The head is either free logits or the reference's ordinal
"logistic" parameterisation: a mean and a log-scale per channel, and the logits are the log-masses of a
logistic truncated to S bins on [-1, 1] (PixelCNN++ / Campbell et al. 2022), so that near values get near mass.
"""

import keras
import numpy as np
from keras import ops

from keras_dit.backend import concrete_value
from keras_dit.models.backbone import Backbone
from keras_dit.validation import check_choice, check_int, check_labels

PARAMETERIZATIONS = ("logits", "logistic")
INPUT_ENCODINGS = ("embedding", "ordinal")


@keras.saving.register_keras_serializable(package="keras_dit")
class StateEmbedding(keras.layers.Layer):
    """(B, H, W, C) states -> (B, H, W, width) features.

    ``"embedding"``: a learned vector per (channel, state), summed over channels. ``"ordinal"``: the states
    centred to [-1, 1] with ``data_min_max`` (the reference's input), then a linear map.
    """

    def __init__(self, num_states, width, encoding="embedding", data_min_max=None, **kwargs):
        super().__init__(**kwargs)
        self.num_states, self.width, self.encoding = num_states, width, encoding
        self.data_min_max = list(data_min_max) if data_min_max is not None else [0, num_states - 1]

    def build(self, input_shape):
        channels = input_shape[-1]
        if self.encoding == "embedding":
            self.table = self.add_weight((channels * self.num_states, self.width), "random_normal", name="table")
        else:
            self.kernel = self.add_weight((channels, self.width), "glorot_uniform", name="kernel")
            self.bias = self.add_weight((self.width,), "zeros", name="bias")

    def call(self, states):
        if self.encoding == "embedding":
            channels = states.shape[-1]
            index = ops.cast(states, "int32") + self.num_states * ops.arange(channels, dtype="int32")  # (B, H, W, C)
            return ops.sum(ops.take(self.table, index, axis=0), axis=-2)  # (B, H, W, width)
        low, high = self.data_min_max
        centred = 2.0 * (ops.cast(states, "float32") - low) / (high - low) - 1.0
        return ops.matmul(centred, self.kernel) + self.bias

    def get_config(self):
        return {**super().get_config(), "num_states": self.num_states, "width": self.width,
                "encoding": self.encoding, "data_min_max": self.data_min_max}


@keras.saving.register_keras_serializable(package="keras_dit")
class CategoricalHead(keras.layers.Layer):
    """(B, H, W, F) features -> (B, H, W, C, S) logits, free or truncated-logistic (``fix_logistic`` as the reference).

    It computes in float32 under any policy (pass ``dtype`` to override), as DiT's ``FinalLayer``: the CTMC loss
    takes float32 log-probabilities under mixed precision.
    """

    def __init__(self, num_states, channels, parameterization="logits", fix_logistic=False, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.num_states, self.channels = num_states, channels
        self.parameterization, self.fix_logistic = parameterization, fix_logistic
        per_channel = num_states if parameterization == "logits" else 2
        self.dense = keras.layers.Dense(channels * per_channel, dtype=self.dtype_policy, name="dense")

    def build(self, input_shape):
        self.dense.build(input_shape)

    def call(self, features):
        out = self.dense(features)  # (B, H, W, C * S) or (B, H, W, 2 C)
        shape = ops.shape(features)[:3]
        if self.parameterization == "logits":
            return ops.reshape(out, (*shape, self.channels, self.num_states))
        mu = out[..., : self.channels, None]  # (B, H, W, C, 1), in the [-1, 1] image scale
        inv_scale = ops.exp(-(out[..., self.channels:, None] - 2.0))
        width = 2.0 / self.num_states
        centres = ops.convert_to_tensor(np.linspace(-1 + width / 2, 1 - width / 2, self.num_states), "float32")
        left = (centres - width / 2 - mu) * inv_scale
        right = (centres + width / 2 - mu) * inv_scale
        log_cdf_left, log_cdf_right = ops.log_sigmoid(left), ops.log_sigmoid(right)
        logits = _log_minus_exp(log_cdf_right, log_cdf_left)  # log(sigmoid(right) - sigmoid(left))
        if self.fix_logistic:  # the same mass from the upper tails: accurate where both CDFs are near 1
            logits = ops.minimum(logits, _log_minus_exp(log_cdf_left - left, log_cdf_right - right))
        return logits

    def get_config(self):
        return {**super().get_config(), "num_states": self.num_states, "channels": self.channels,
                "parameterization": self.parameterization, "fix_logistic": self.fix_logistic}


def _log_minus_exp(a, b, eps=1e-6):
    """log(exp(a) - exp(b)) for b < a."""
    return a + ops.log1p(-ops.exp(b - a) + eps)


@keras.saving.register_keras_serializable(package="keras_dit")
class CategoricalBackbone(Backbone):
    """A backbone over categorical pixels: states in, logits over S states out.

    Args:
        backbone: a DiT / U-ViT / ReiMei (instance, or its serialized config) whose ``in_channels`` is the
            feature width the embedding produces; its output width feeds the head. DiT must have
            ``learn_sigma=False``. Its conditioning (labels, CFG null class) is used as it is.
        num_states: S.
        in_channels: C, channels of the state images.
        parameterization: ``"logits"`` (free logits) or ``"logistic"`` (ordinal: truncated discretised logistic).
        fix_logistic: in the logistic head, take the smaller of the two ways of computing a bin's log mass
            (the reference's numerically safer option).
        input_encoding: ``"embedding"`` (a learned vector per state and channel) or ``"ordinal"`` (the centred
            value, the reference's input).
        data_min_max: [low, high] state values mapped to [-1, 1] by the ``ordinal`` encoding; default [0, S - 1].

    Call arguments:
        inputs: ``{"x": (B, H, W, C) states (integers in [0, S), any dtype), "t": (B,), "condition": ...}``.
        Returns (B, H, W, C, S) logits.

    Example:
    >>> inner = DiT(input_size=8, patch_size=2, in_channels=32, hidden_size=64, depth=2, num_heads=4, num_classes=10)
    >>> model = CategoricalBackbone(inner, num_states=4, in_channels=1)
    """

    def __init__(self, backbone, num_states, in_channels=1, parameterization="logits", fix_logistic=False,
                 input_encoding="embedding", data_min_max=None, **kwargs):
        if isinstance(backbone, dict):
            backbone = keras.saving.deserialize_keras_object(backbone)
        num_states = check_int("num_states", num_states, 2)
        check_int("in_channels", in_channels)
        check_choice("parameterization", parameterization, PARAMETERIZATIONS)
        check_choice("input_encoding", input_encoding, INPUT_ENCODINGS)
        if getattr(backbone, "learn_sigma", False):
            raise ValueError("The wrapped backbone must have learn_sigma=False: the categorical head has no variance.")
        if data_min_max is not None and (len(data_min_max) != 2 or data_min_max[1] <= data_min_max[0]):
            raise ValueError(f"data_min_max must be [low, high] with low < high, got {data_min_max!r}.")
        inner_x = backbone.input["x"]
        size, width = inner_x.shape[1], inner_x.shape[-1]
        inputs = {"x": keras.Input((size, inner_x.shape[2], in_channels), name="x"), "t": keras.Input((), name="t")}
        inner_inputs = {"t": inputs["t"]}
        if "condition" in backbone.input:
            inputs["condition"] = keras.Input(
                backbone.input["condition"].shape[1:], dtype=backbone.input["condition"].dtype, name="condition"
            )
            inner_inputs["condition"] = inputs["condition"]
        features = StateEmbedding(num_states, width, input_encoding, data_min_max, name="state_embedding")(inputs["x"])
        features = backbone({**inner_inputs, "x": features})  # (B, H, W, F)
        logits = CategoricalHead(num_states, in_channels, parameterization, fix_logistic, name="head")(features)
        super().__init__(inputs=inputs, outputs=logits, **kwargs)
        self.backbone = backbone
        self.num_states, self.in_channels, self.input_size = num_states, in_channels, size
        self._init_args = dict(
            backbone=keras.saving.serialize_keras_object(backbone), num_states=num_states, in_channels=in_channels,
            parameterization=parameterization, fix_logistic=fix_logistic, input_encoding=input_encoding,
            data_min_max=list(data_min_max) if data_min_max is not None else None,
        )

    @property
    def condition_embedding(self):
        return self.backbone.condition_embedding

    def null_conditions(self, batch_size):
        return self.backbone.null_conditions(batch_size)

    def check_inputs(self, inputs):
        x = inputs.get("x")
        if x is None or "t" not in inputs:
            raise ValueError("CategoricalBackbone inputs need 'x' (B, H, W, C) states and 't' (B,).")
        expected = tuple(self.input["x"].shape[1:])
        if len(x.shape) != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"Input 'x' has shape {tuple(x.shape)}; this model takes (B, *{expected}) states.")
        values = concrete_value(x)
        if values is not None:
            check_labels(values, self.num_states - 1, "Pixel states", hint=f"num_states={self.num_states}: quantise "
                         "[-1, 1] images with DiscreteCTMC.to_states()")
        inputs = dict(inputs)
        inputs["x"] = ops.cast(x, "float32")
        t = inputs["t"]
        if len(getattr(t, "shape", ())) == 0:
            inputs["t"] = ops.full((ops.shape(x)[0],), t, dtype="float32")
        if "condition" in inputs and "condition" not in self.input:
            raise ValueError("This CategoricalBackbone is unconditional but got a 'condition'.")
        if "condition" in self.input and inputs.get("condition") is None:
            raise ValueError("This CategoricalBackbone is conditional: pass 'condition'.")
        return inputs

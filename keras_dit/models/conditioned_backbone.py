"""Shared plumbing of the image backbones that host a conditioner (DiT, U-ViT, ReiMei): inputs, checks, config."""

import keras
import numpy as np
from keras import ops

from keras_dit.conditioning.factory import get_conditioner
from keras_dit.models.backbone import Backbone


def make_conditioner(conditioner, hidden_size, num_classes=None, class_dropout_prob=0.1, seed=None):
    """The backbone's conditioner: ``conditioner`` (kind / dict / instance), else labels if ``num_classes``."""
    if conditioner is not None and num_classes is not None:
        raise ValueError("Pass either num_classes (class labels) or conditioner, not both.")
    if conditioner is not None:
        return get_conditioner(conditioner, hidden_size)
    if num_classes is not None:
        return get_conditioner("labels", hidden_size, num_classes=num_classes, dropout_prob=class_dropout_prob,
                               seed=seed, name="label_conditioner")
    return None


def image_inputs(input_size, in_channels, conditioner):
    """The functional inputs ``{"x", "t"[, "condition"]}`` of a backbone over square images."""
    inputs = {"x": keras.Input((input_size, input_size, in_channels), name="x"), "t": keras.Input((), name="t")}
    if conditioner is not None:
        inputs["condition"] = keras.Input(
            tuple(conditioner.condition_shape), dtype=conditioner.condition_dtype, name="condition"
        )
    return inputs


class ConditionedBackbone(Backbone):
    """A ``Backbone`` over square images with an optional conditioner in ``self.conditioner``.

    Subclasses call ``image_inputs`` / ``make_conditioner`` before building the graph, then ``_finish`` with
    their constructor arguments. A conditioner given as an object or dict is stored serialized in the config.
    """

    def _finish(self, conditioner, init_args):
        self.conditioner = conditioner
        if init_args.get("conditioner") is not None:
            init_args["conditioner"] = keras.saving.serialize_keras_object(conditioner)
        self._init_args = init_args
        for key, value in init_args.items():
            if key != "conditioner":
                setattr(self, key, value)

    @property
    def null_condition(self):
        """One sample's raw null condition (a label, a zero multi-hot, a NaN vector), or ``None`` if unconditional.

        Batch it for the unconditional CFG branch, or use ``model.conditioner.null_condition(batch_size)``.
        """
        if self.conditioner is None:
            return None
        null = self.conditioner.null_condition(1)[0]
        return null.item() if null.ndim == 0 else null

    def check_inputs(self, inputs):
        """Validate the keys, ``x`` (B, input_size, input_size, in_channels) and ``t`` (B,) (a scalar is broadcast),
        then the condition (``prepare_condition``)."""
        name = type(self).__name__
        unknown = set(inputs) - {"x", "t", "condition"}
        if unknown:
            raise ValueError(f"Unknown {name} input keys {sorted(unknown)}; expected 'x', 't' and 'condition'.")
        if "x" not in inputs or "t" not in inputs:
            raise ValueError(f"{name} inputs need 'x' (B, H, W, C) and 't' (B,).")
        x = inputs["x"]
        expected = (self.input_size, self.input_size, self.in_channels)
        if len(x.shape) != 4:
            raise ValueError(f"{name} input 'x' must have rank 4 (B, H, W, C), got shape {tuple(x.shape)}.")
        if tuple(x.shape[1:]) != expected:
            h, w = x.shape[1:3]
            patch = getattr(self, "patch_size", None)
            hint = ""
            if patch and h is not None and w is not None and (h % patch or w % patch):
                hint = f" ({h}x{w} is not divisible by patch_size={patch})"
            raise ValueError(
                f"{name} input 'x' has shape {tuple(x.shape)}{hint}; this model was built for (B, *{expected}). "
                "Resize the inputs or build the model with matching input_size / in_channels."
            )
        batch = x.shape[0]
        t = inputs["t"]
        if len(getattr(t, "shape", np.shape(t))) == 0:
            full = np.full if isinstance(x, np.ndarray) else ops.full  # keep NumPy inputs all NumPy
            inputs["t"] = t = full((x.shape[0] if isinstance(x, np.ndarray) else ops.shape(x)[0],), t, "float32")
        if len(t.shape) != 1 or (batch is not None and t.shape[0] not in (None, batch)):
            raise ValueError(f"{name} input 't' must have shape ({batch},), got {tuple(t.shape)}.")
        inputs["condition"] = self.prepare_condition(inputs.get("condition"), batch)
        if inputs["condition"] is None:
            del inputs["condition"]
        return inputs

"""Base class of the denoising backbones: a functional Keras model over ``{"x", "t", "condition"}``."""

import difflib

import keras
import numpy as np


class Backbone(keras.Model):
    """A denoiser ``f({"x": x_t, "t": t, "condition": c}) -> prediction`` with named presets.

    Subclasses build a functional graph in ``__init__``, keep their constructor arguments in
    ``self._init_args`` (that is their whole config) and list their presets in ``presets``
    (name -> constructor keyword arguments). ``check_inputs`` validates a call's inputs with messages
    that say what was expected; value checks run only when values are concrete (not inside ``jit``).
    """

    presets = {}

    @classmethod
    def from_preset(cls, name, **overrides):
        """Build a preset, e.g. ``DiT.from_preset("DiT-S/2", input_size=16, num_classes=10)``."""
        if name not in cls.presets:
            close = difflib.get_close_matches(str(name), cls.presets, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(
                f"Unknown {cls.__name__} preset {name!r}.{hint} Valid presets: {', '.join(cls.presets)}."
            )
        return cls(**{**cls.presets[name], **overrides})

    def __call__(self, inputs, *args, **kwargs):
        if not isinstance(inputs, dict):
            raise ValueError(
                f"{type(self).__name__} takes a dict {{'x': x_t, 't': t, 'condition': c}}, "
                f"got {type(inputs).__name__}."
            )
        # NumPy / Python values become tensors (before and after the checks, which may encode strings to
        # NumPy): a call must not mix the two.
        inputs = self.check_inputs(_as_tensors(inputs))
        inputs = _as_tensors(inputs)
        return super().__call__(inputs, *args, **kwargs)

    @property
    def condition_embedding(self):
        """The layer that embeds conditions, owning the null condition and the CFG dropout rate, or ``None``."""
        return getattr(self, "conditioner", None)

    def null_conditions(self, batch_size):
        """A batch of raw "no condition" inputs (the unconditional CFG branch), or ``None`` if there is none."""
        conditioner = getattr(self, "conditioner", None)
        if conditioner is None or conditioner.dropout_prob == 0:
            return None
        return conditioner.null_condition(batch_size)

    def prepare_condition(self, condition, batch_size=None):
        """Raw ``condition`` (labels, class names such as ``"seven"``, tag prompts, multi-hot or parameter vectors)
        checked and encoded by the conditioner for a batch of ``batch_size`` (``None``: any); ``None`` for an
        unconditional model, which must get none. Values are checked when concrete (not inside ``jit``)."""
        conditioner, name = self.condition_embedding, type(self).__name__
        if conditioner is None:
            if condition is not None:
                raise ValueError(f"This {name} is unconditional but got a 'condition'.")
            return None
        if condition is None:
            raise ValueError(
                f"This {name} is {conditioner.description} ({type(conditioner).__name__}); pass 'condition' "
                "(the conditioner's null_condition for an unconditional sample)."
            )
        return conditioner.prepare(condition, batch_size)

    def check_inputs(self, inputs):
        """Validate (and possibly normalise) a call's input dict; subclasses extend this."""
        return inputs

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, **self._init_args}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _as_tensors(inputs):
    return {
        key: keras.ops.convert_to_tensor(value) if isinstance(value, (np.ndarray, np.generic, float, int)) else value
        for key, value in inputs.items()
    }

"""``get_conditioner``: one entry point from a kind name, a dict or an instance to a conditioner layer."""

import keras

from keras_dit.conditioning.base import Conditioner
from keras_dit.conditioning.class_labels import ClassConditioner
from keras_dit.conditioning.parameters import ParameterConditioner
from keras_dit.conditioning.tags import TagConditioner

CONDITIONERS = {
    "labels": ClassConditioner,
    "tags": TagConditioner,
    "parameters": ParameterConditioner,
}
_ALIASES = {"class_labels": "labels", "classes": "labels", "params": "parameters"}


def get_conditioner(kind, hidden_size=None, **kwargs):
    """A conditioner of width ``hidden_size``.

    Args:
        kind: ``"labels"`` (``num_classes``, ``label_names``), ``"tags"`` (``vocabulary``) or ``"parameters"``
            (``num_parameters``); or a dict ``{"kind": ..., **kwargs}``; or a serialized conditioner (as saved in
            a backbone's config); or a ``Conditioner`` instance (returned as is, after checking its width).
        hidden_size: the backbone width D the conditioner must produce.
        **kwargs: the chosen class's constructor arguments (``dropout_prob``, ``seed``, ...).

    Example:
    >>> get_conditioner("tags", 64, vocabulary=["blush", "smile", "hat"])
    """
    if isinstance(kind, dict) and "class_name" in kind:
        kind = keras.saving.deserialize_keras_object(kind)
    elif isinstance(kind, dict):
        kwargs = {**{k: v for k, v in kind.items() if k != "kind"}, **kwargs}
        kind = kind.get("kind")
    if isinstance(kind, Conditioner):
        if hidden_size is not None and kind.hidden_size != hidden_size:
            raise ValueError(
                f"The conditioner {kind.name!r} has hidden_size={kind.hidden_size} but the backbone's width is "
                f"{hidden_size}; build it with hidden_size={hidden_size}."
            )
        return kind
    name = _ALIASES.get(kind, kind)
    if name not in CONDITIONERS:
        raise ValueError(f"Unknown conditioner kind {kind!r}; expected one of {sorted(CONDITIONERS)}.")
    if hidden_size is None:
        raise ValueError(f"get_conditioner({kind!r}) needs hidden_size (the backbone width).")
    return CONDITIONERS[name](hidden_size=hidden_size, **kwargs)

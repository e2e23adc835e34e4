"""Argument checks shared by every floor of the package (layers, models, diffusion, data, CLI).

Each check raises a ``ValueError`` whose message names the argument, the bad value and what is expected, and
returns the value (converted where said) so a constructor can write ``self.depth = check_int("depth", depth)``.
This module imports nothing from ``keras_dit``: it sits at the bottom of the import graph.
"""

import difflib
import numbers

import numpy as np


def _hint(hint):
    return f"; {hint}" if hint else ""


def check_choice(what, value, valid):
    """``value`` if it is one of the strings ``valid``, else an error naming the closest valid choice."""
    if isinstance(value, str) and value in valid:
        return value
    close = difflib.get_close_matches(str(value), valid, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"Unknown {what} {value!r}.{hint} Valid values: {', '.join(repr(v) for v in valid)}.")


def check_int(name, value, minimum=1, maximum=None, hint=None):
    """``value`` as an ``int`` if it is an integer (not a bool) >= ``minimum`` (and <= ``maximum`` if given)."""
    integer = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not integer or value < minimum or (maximum is not None and value > maximum):
        upper = "" if maximum is None else f" and <= {maximum}"
        raise ValueError(f"{name} must be an integer >= {minimum}{upper}, got {value!r}{_hint(hint)}.")
    return int(value)


def check_sizes(**sizes):
    """Each keyword through ``check_int``: an integer >= 1, or >= ``minimum`` when given as ``(value, minimum)``
    (``depth=depth, num_mixer_layers=(n, 0)``); returns nothing."""
    for name, value in sizes.items():
        value, minimum = value if isinstance(value, tuple) else (value, 1)
        check_int(name, value, minimum)


def check_positive(name, value, allow_none=False, hint=None):
    """``value`` as a ``float`` if it is a finite number > 0 (or ``None`` when ``allow_none``)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (0 < value < float("inf")):
        expected = "a positive number or None" if allow_none else "a positive number"
        raise ValueError(f"{name} must be {expected}, got {value!r}{_hint(hint)}.")
    return float(value)


def check_nonnegative(name, value, hint=None):
    """``value`` as a ``float`` if it is a finite number >= 0 (a weight or a noise scale that 0 turns off)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (0 <= value < float("inf")):
        raise ValueError(f"{name} must be a number >= 0, got {value!r}{_hint(hint)}.")
    return float(value)


def check_range(name, value, low, high, closed="[]", hint=None):
    """``value`` as a ``float`` if it lies in the interval from ``low`` to ``high``; ``closed`` gives its ends
    as brackets, e.g. ``"[)"`` for ``low <= value < high``."""
    number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    above = number and (value >= low if closed[0] == "[" else value > low)
    if not (above and (value <= high if closed[1] == "]" else value < high)):
        raise ValueError(f"{name} must be in {closed[0]}{low}, {high}{closed[1]}, got {value!r}{_hint(hint)}.")
    return float(value)


def check_divisible(name, value, divisor_name, divisor, hint=None):
    """``value`` if ``divisor`` divides it, else ``"input_size=30 is not divisible by patch_size=4; use a multiple
    of 4 for input_size, or another patch_size"`` (``divisor_name=None`` for a fixed divisor: "by 4")."""
    if value % divisor:
        by = divisor if divisor_name is None else f"{divisor_name}={divisor}"
        other = "" if divisor_name is None else f", or another {divisor_name}"
        hint = hint or f"use a multiple of {divisor} for {name}{other}"
        raise ValueError(f"{name}={value} is not divisible by {by}; {hint}.")
    return value


def check_labels(values, highest, what="labels", hint=None):
    """NumPy ``values`` if they are integers in [0, ``highest``] (float arrays of whole numbers pass)."""
    values = np.asarray(values)
    if values.dtype.kind not in "biuf":
        raise ValueError(f"{what} must be integers, got {values.dtype} values{_hint(hint)}.")
    if values.size and (np.any(values != np.round(values)) or values.min() < 0 or values.max() > highest):
        raise ValueError(f"{what} must be integers in [0, {highest}], got values in [{values.min()}, "
                         f"{values.max()}]{_hint(hint)}.")
    return values

"""Loading a foreign state dict into Keras variables: all-or-nothing, with errors that name the keys."""

import os

import numpy as np


def load_state_dict(path):
    """Read a PyTorch (``.pt``/``.pth``/``.bin``), ``.safetensors`` or ``.npz`` file into ``{key: ndarray}``."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No checkpoint file at {path!r}; check the path.")
    if path.endswith(".npz"):
        with np.load(path) as f:
            return {k: f[k] for k in f.files}
    if path.endswith(".safetensors"):
        from safetensors.numpy import load_file

        return load_file(path)
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)


def to_numpy_dict(state_dict):
    """``{key: torch.Tensor | ndarray}`` -> ``{key: float32/int ndarray}``."""
    out = {}
    for key, value in state_dict.items():
        if hasattr(value, "detach"):
            value = value.detach().cpu()
            value = value.float().numpy() if value.is_floating_point() else value.numpy()
        out[key] = np.asarray(value)
    return out


class StateDictLoader:
    """Collects ``variable <- transform(state_dict[key])`` assignments, then checks and applies them at once.

    Nothing is assigned unless every key exists and every transformed tensor has its variable's shape, so a
    failed conversion never leaves a half-loaded model. Keys of the state dict that no assignment used are an
    error too (they mean the architecture differs), unless listed in ``ignore``.
    """

    def __init__(self, state_dict, source="state dict"):
        self.tensors = to_numpy_dict(state_dict)
        self.source = source
        self.plan = []

    def get(self, key):
        """The raw tensor at ``key`` (for checks), or ``None`` when missing."""
        return self.tensors.get(key)

    def assign(self, variable, key, transform=None):
        """Plan ``variable.assign(transform(state_dict[key]))``."""
        self.plan.append((variable, key, transform))

    def apply(self, ignore=()):
        missing, mismatched, values = [], [], []
        for variable, key, transform in self.plan:
            if key not in self.tensors:
                missing.append(key)
                continue
            value = self.tensors[key]
            try:
                value = transform(value) if transform else value
            except ValueError:  # e.g. a transpose of a tensor of the wrong rank
                mismatched.append(f"{key}: {tuple(value.shape)} cannot take the layout of {tuple(variable.shape)}")
                continue
            if tuple(value.shape) != tuple(variable.shape):
                mismatched.append(f"{key}: {tuple(value.shape)} (after layout change) vs expected {tuple(variable.shape)}")
            values.append((variable, value))
        used = {key for _, key, _ in self.plan}
        unused = sorted(k for k in self.tensors if k not in used and not any(k.startswith(p) for p in ignore))
        problems = []
        if missing:
            problems.append(f"missing keys: {', '.join(missing[:20])}" + (" ..." if len(missing) > 20 else ""))
        if mismatched:
            problems.append("wrong shapes: " + "; ".join(mismatched[:20]))
        if unused:
            problems.append(f"unexpected keys: {', '.join(unused[:20])}" + (" ..." if len(unused) > 20 else ""))
        if problems:
            raise ValueError(
                f"The {self.source} does not match the model ({' | '.join(problems)}). Check that the "
                "architecture arguments (preset, input size, channels, classes, learn_sigma) match the checkpoint."
            )
        for variable, value in values:
            variable.assign(value.astype(variable.dtype))


def dense(loader, layer, prefix):
    """Plan a torch ``nn.Linear`` (weight (out, in), bias) into a Keras ``Dense`` (kernel (in, out))."""
    loader.assign(layer.kernel, f"{prefix}.weight", lambda w: w.T)
    if layer.use_bias:
        loader.assign(layer.bias, f"{prefix}.bias")

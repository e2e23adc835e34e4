"""Classifier-free guidance: the conditional and unconditional (or negative) branches in one batched call."""

from keras import ops


def check_guidance_interval(interval):
    """``interval`` as a ``(lo, hi)`` pair of floats with 0 <= lo <= hi <= 1, or None; a ValueError otherwise."""
    if interval is None:
        return None
    try:
        lo, hi = (float(v) for v in interval)
    except (TypeError, ValueError):
        raise ValueError(f"guidance_interval must be a (lo, hi) pair of numbers in [0, 1], got {interval!r}.") from None
    if not 0.0 <= lo <= hi <= 1.0:
        raise ValueError(
            f"guidance_interval must satisfy 0 <= lo <= hi <= 1 (noise level, 1 = pure noise), got {interval!r}; "
            "e.g. (0.1, 0.7) guides only the middle of the trajectory."
        )
    return lo, hi


def noise_level(objective, t):
    """The time ``t`` (native units) as a fraction from 0 (data) to 1 (noise): ``t / (T - 1)`` for Gaussian
    diffusion (timestep T - 1 is 1), ``t`` itself for flows and discrete CTMCs."""
    total = getattr(objective, "num_train_timesteps", None)
    return t if total is None else t / float(total - 1)


def guided_model_fn(denoise, condition, uncondition=None, guidance_scale=1.0, guided_channels=None, interval=None,
                    objective=None):
    """Wrap ``denoise(x, t, condition)`` into the ``model_fn(x, t)`` a sampler calls.

    With ``guidance_scale == 1`` (or no ``uncondition``) it is one plain conditional call. Otherwise the
    batch is doubled, conditional and unconditional halves run in a single forward, and the prediction is
    ``uncond + s * (cond - uncond)``. ``uncondition`` is the null condition, or a negative prompt that takes
    its place. ``guided_channels`` limits guidance to the first channels (the prediction, not DiT's learned
    variance channels, which are taken from the conditional branch).

    ``interval=(lo, hi)`` (Kynkaanniemi et al. 2024) guides only where the noise level ``noise_level(objective,
    t)`` is in [lo, hi] and takes the conditional prediction elsewhere. ``guidance_scale`` may be a scalar tensor
    (one compiled sampling loop then serves every scale).
    """
    if (isinstance(guidance_scale, (int, float)) and guidance_scale == 1.0) or uncondition is None:
        return lambda x, t: denoise(x, t, condition)
    interval = check_guidance_interval(interval)
    both = _concat(condition, uncondition)

    def model_fn(x, t):
        out = denoise(ops.concatenate([x, x], axis=0), ops.concatenate([t, t], axis=0), both)
        cond, uncond = ops.split(out, 2, axis=0)
        scale = guidance_scale
        if interval is not None:
            level = noise_level(objective, ops.cast(t, "float32"))
            inside = ops.logical_and(level >= interval[0], level <= interval[1])
            scale = ops.reshape(ops.where(inside, guidance_scale, 1.0), (-1,) + (1,) * (len(out.shape) - 1))
        if guided_channels is None or guided_channels == out.shape[-1]:
            return uncond + scale * (cond - uncond)
        guided = uncond[..., :guided_channels] + scale * (
            cond[..., :guided_channels] - uncond[..., :guided_channels]
        )
        return ops.concatenate([guided, cond[..., guided_channels:]], axis=-1)

    return model_fn


def _concat(a, b):
    """Concatenate two conditions along the batch (dicts of tensors concatenate key by key)."""
    if isinstance(a, dict):
        return {key: ops.concatenate([a[key], b[key]], axis=0) for key in a}
    return ops.concatenate([a, b], axis=0)

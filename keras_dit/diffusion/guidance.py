"""Classifier-free guidance: the conditional and unconditional (or negative) branches in one batched call."""

from keras import ops


def guided_model_fn(denoise, condition, uncondition=None, guidance_scale=1.0, guided_channels=None):
    """Wrap ``denoise(x, t, condition)`` into the ``model_fn(x, t)`` a sampler calls.

    With ``guidance_scale == 1`` (or no ``uncondition``) it is one plain conditional call. Otherwise the
    batch is doubled, conditional and unconditional halves run in a single forward, and the prediction is
    ``uncond + s * (cond - uncond)``. ``uncondition`` is the null condition, or a negative prompt that takes
    its place. ``guided_channels`` limits guidance to the first channels (the prediction, not DiT's learned
    variance channels, which are taken from the conditional branch).
    """
    if guidance_scale == 1.0 or uncondition is None:
        return lambda x, t: denoise(x, t, condition)

    both = _concat(condition, uncondition)

    def model_fn(x, t):
        out = denoise(ops.concatenate([x, x], axis=0), ops.concatenate([t, t], axis=0), both)
        cond, uncond = ops.split(out, 2, axis=0)
        if guided_channels is None or guided_channels == out.shape[-1]:
            return uncond + guidance_scale * (cond - uncond)
        guided = uncond[..., :guided_channels] + guidance_scale * (
            cond[..., :guided_channels] - uncond[..., :guided_channels]
        )
        return ops.concatenate([guided, cond[..., guided_channels:]], axis=-1)

    return model_fn


def _concat(a, b):
    """Concatenate two conditions along the batch (dicts of tensors concatenate key by key)."""
    if isinstance(a, dict):
        return {key: ops.concatenate([a[key], b[key]], axis=0) for key in a}
    return ops.concatenate([a, b], axis=0)

"""Fidelity of images generated for Alphabet-challenge parameter vectors, against the exact renders of those vectors.

The generator draws the one true image of any parameter vector (``render_alphabet``), so a sample is scored
directly against it, at the sample's size:

- PSNR (dB, peak 255) of each sample against the true render, averaged over the samples (``inf`` for an exact
  copy);
- background-colour accuracy: the share of samples whose background colour, the per-channel median of their
  border pixels (the outermost ring, mostly background: letter boxes cover at most half the side), lies within
  ``tolerance`` (0-255 units, on every channel) of the vector's background colour. 24 is ~10% of the range;
  a model ignoring the vectors hits it by chance (49 / 256)^3 ~ 0.7% of the time.

A baseline that ignores the parameters (``baseline``: e.g. the same model sampled with the null condition) is
scored the same way, so the report says how much the conditioning buys.
"""

import numpy as np

from keras_dit.data.alphabet_challenge import NUM_PARAMS, render_alphabet

BACKGROUND_TOLERANCE = 24.0


def border_median(images):
    """(N, S, S, 3) images -> (N, 3) float per-channel medians of their outermost ring of pixels (0-255)."""
    images = np.asarray(images, dtype=np.float64)
    ring = np.concatenate([images[:, 0], images[:, -1], images[:, 1:-1, 0], images[:, 1:-1, -1]], axis=1)
    return np.median(ring, axis=1)


def _psnr(images, truth):
    """(N,) PSNR in dB (peak 255) of each image against its truth; ``inf`` where they are equal."""
    mse = np.mean((images.astype(np.float64) - truth.astype(np.float64)) ** 2, axis=(1, 2, 3))
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(255.0 ** 2 / mse)


def _scores(images, truth, background, tolerance):
    error = np.max(np.abs(border_median(images) - background), axis=1)  # (N,) worst channel, 0-255
    return {"psnr": float(np.mean(_psnr(images, truth))), "background_accuracy": float(np.mean(error <= tolerance)),
            "background_error": float(np.mean(error))}


def _check_images(images, params, what):
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise ValueError(f"{what} must be uint8 (0-255), got dtype {images.dtype}; pass generate()'s output.")
    if images.ndim != 4 or images.shape[-1] != 3 or images.shape[1] != images.shape[2] or images.shape[1] < 3:
        raise ValueError(f"{what} must be square RGB (N, S, S, 3) with S >= 3, got shape {images.shape}.")
    if len(images) != len(params):
        raise ValueError(f"{what}: {len(images)} images for {len(params)} parameter vectors; give one vector per "
                         "image.")
    return images


def evaluate_alphabet(images, params, baseline=None, tolerance=BACKGROUND_TOLERANCE):
    """Score samples generated for Alphabet parameter vectors against the true renders of those vectors.

    Args:
        images: uint8 (N, S, S, 3) samples, image ``i`` generated for ``params[i]``.
        params: (N, 27) the parameter vectors they were generated for.
        baseline: optional uint8 (N, S, S, 3) samples of a model that ignores the parameters (the null
            condition), scored against the same vectors.
        tolerance: background colours within this many 0-255 units on every channel count as right.

    Returns a dict of plain numbers: ``psnr`` (mean dB), ``background_accuracy`` (share), ``background_error``
    (mean of the worst channel's absolute error, 0-255), ``num_images``, ``tolerance``; with ``baseline`` also
    ``baseline_psnr``, ``baseline_background_accuracy``, ``baseline_background_error`` and ``psnr_margin``
    (``psnr - baseline_psnr``).
    """
    params = np.asarray(params, dtype=np.float32)
    if params.ndim != 2 or params.shape[1] != NUM_PARAMS:
        raise ValueError(f"Alphabet parameter vectors must be (N, {NUM_PARAMS}), got shape {params.shape}.")
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be >= 0 (0-255 units), got {tolerance!r}.")
    images = _check_images(images, params, "images")
    truth = render_alphabet(params, images.shape[1])
    background = params[:, :3].astype(np.float64) * 255.0
    results = {**_scores(images, truth, background, tolerance), "num_images": int(len(images)),
               "tolerance": float(tolerance)}
    if baseline is not None:
        baseline = _check_images(baseline, params, "baseline")
        if baseline.shape != images.shape:
            raise ValueError(f"baseline has shape {baseline.shape}, the images {images.shape}; sample both at the "
                             "same size.")
        results.update({f"baseline_{key}": value
                        for key, value in _scores(baseline, truth, background, tolerance).items()})
        results["psnr_margin"] = results["psnr"] - results["baseline_psnr"]
    return results

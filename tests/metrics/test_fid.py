import warnings

import keras
import numpy as np
import pytest
from PIL import Image
from scipy import linalg

from keras_dit import metrics
from tests.helpers import BACKEND


def reference_frechet_distance(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """pytorch-fid's ``calculate_frechet_distance`` (fid_score.py), written out from its documented algorithm:
    d^2 = ||mu1 - mu2||^2 + Tr(C1 + C2 - 2 sqrt(C1 C2)); when sqrtm is not finite, retry with eps added to both
    diagonals; a complex result whose diagonal's imaginary part exceeds 1e-3 is an error, else its real part."""
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError("Imaginary component")
        covmean = covmean.real
    return diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)


@pytest.mark.parametrize("num, dim", [(500, 16), (12, 32)])  # well conditioned; singular (N < D)
def test_frechet_distance_matches_pytorch_fid(num, dim):
    rng = np.random.default_rng(dim)
    a = rng.normal(size=(num, dim))
    b = rng.normal(size=(num, dim)) @ rng.normal(size=(dim, dim)) * 0.5 + 0.3
    stats = [*metrics.feature_statistics(a), *metrics.feature_statistics(b)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sqrtm's warnings about the singular case
        ours, expected = metrics.frechet_distance(*stats), reference_frechet_distance(*stats)
    assert abs(ours - expected) <= 1e-6 * max(1.0, abs(expected)), (ours, expected)


def test_eps_offset_and_imaginary_part_handling(monkeypatch):
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(40, 6)), rng.normal(size=(40, 6)) + 1
    stats = [*metrics.feature_statistics(a), *metrics.feature_statistics(b)]
    real_sqrtm = linalg.sqrtm
    calls = []

    def failing_once(matrix):  # the first square root is not finite, as for a singular product
        calls.append(matrix)
        return np.full_like(matrix, np.nan) if len(calls) % 2 == 1 else real_sqrtm(matrix)

    monkeypatch.setattr(linalg, "sqrtm", failing_once)
    with pytest.warns(UserWarning, match="singular"):
        ours = metrics.frechet_distance(*stats, eps=1e-3)
    assert ours == pytest.approx(reference_frechet_distance(*stats, eps=1e-3), abs=1e-9)
    np.testing.assert_allclose(calls[1], (stats[1] + 1e-3 * np.eye(6)) @ (stats[3] + 1e-3 * np.eye(6)))

    monkeypatch.setattr(linalg, "sqrtm", lambda m: real_sqrtm(m) + 1e-6j)  # negligible imaginary noise: dropped
    assert metrics.frechet_distance(*stats) == pytest.approx(reference_frechet_distance(*stats), abs=1e-9)
    monkeypatch.setattr(linalg, "sqrtm", lambda m: real_sqrtm(m) + 0.1j)
    with pytest.raises(ValueError, match="imaginary part"):
        metrics.frechet_distance(*stats)


def test_identical_sets_score_zero_and_shifted_gaussians_the_closed_form():
    rng = np.random.default_rng(0)
    mu, sigma = metrics.feature_statistics(rng.normal(size=(400, 8)))
    assert abs(metrics.frechet_distance(mu, sigma, mu, sigma)) < 1e-6
    for seed in range(3):  # a distance: never below 0 (before: -1e-13 here, -4.4e-6 on larger feature sets)
        mu64, sigma64 = metrics.feature_statistics(np.random.default_rng(seed).normal(size=(200, 64)))
        assert metrics.frechet_distance(mu64, sigma64, mu64, sigma64) >= 0.0
    # N(m1, diag(a)) vs N(m2, diag(b)): ||m1 - m2||^2 + sum (sqrt(a) - sqrt(b))^2.
    m1, m2 = rng.normal(size=8), rng.normal(size=8)
    a, b = rng.uniform(0.5, 2, 8), rng.uniform(0.5, 2, 8)
    expected = np.sum((m1 - m2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert abs(metrics.frechet_distance(m1, np.diag(a), m2, np.diag(b)) - expected) < 1e-9
    shift = np.full(8, 0.5)  # the same covariance shifted: ||shift||^2
    assert abs(metrics.frechet_distance(mu, sigma, mu + shift, sigma) - 8 * 0.25) < 1e-6


def test_mismatched_statistics_are_an_error():
    with pytest.raises(ValueError, match="same dimension"):
        metrics.frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


def test_statistics_files_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(50, 4)), rng.normal(size=(50, 4)) + 1
    stats = [*metrics.feature_statistics(a), *metrics.feature_statistics(b)]
    metrics.save_statistics(tmp_path / "real.npz", *stats[:2])
    metrics.save_statistics(tmp_path / "fake.npz", *stats[2:])
    mu, sigma = metrics.load_statistics(tmp_path / "real.npz")
    np.testing.assert_array_equal(mu, stats[0])
    score = metrics.fid(str(tmp_path / "real.npz"), str(tmp_path / "fake.npz"))  # no network, no model needed
    assert score == pytest.approx(metrics.frechet_distance(*stats))
    with pytest.raises(FileNotFoundError):
        metrics.load_statistics(tmp_path / "missing.npz")
    np.savez(tmp_path / "bad.npz", mean=mu)
    with pytest.raises(ValueError, match="'mu' and 'sigma'"):
        metrics.load_statistics(tmp_path / "bad.npz")


def test_imagenet_weights_without_network_give_a_clear_error(monkeypatch):
    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    with pytest.raises(FileNotFoundError, match=r"weights='/path/to/inception_v3"):
        metrics.InceptionFeatures(weights="imagenet")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        metrics.InceptionFeatures(weights="/nowhere/inception.h5")


@pytest.mark.large
@pytest.mark.skipif(BACKEND == "jax", reason="building InceptionV3 on JAX compiles every initializer: minutes on CI")
def test_inception_features_from_arrays_and_folders(tmp_path):
    # Two forward passes of two images: the same features from an array and from a folder of PNGs.
    extractor = metrics.InceptionFeatures(weights=None, batch_size=2)
    images = np.random.default_rng(0).integers(0, 256, (2, 299, 299, 3), dtype=np.uint8)
    features = extractor(images)
    assert features.shape == (2, 2048) and np.all(np.isfinite(features))
    for i, image in enumerate(images):
        Image.fromarray(image).save(tmp_path / f"{i}.png")
    mu, sigma = metrics.fid_statistics(str(tmp_path), extractor=extractor)
    expected_mu, expected_sigma = metrics.feature_statistics(features)
    np.testing.assert_allclose(mu, expected_mu, atol=1e-4)
    np.testing.assert_allclose(sigma, expected_sigma, atol=1e-4)

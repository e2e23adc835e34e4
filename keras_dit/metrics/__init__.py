"""Metrics: FID with InceptionV3 features, and the evaluator of samples generated for the built-in digits."""

from keras_dit.metrics.digits import DigitsClassifier, digits_classifier, evaluate_digits
from keras_dit.metrics.fid import (
    InceptionFeatures, feature_statistics, fid, fid_statistics, frechet_distance, load_statistics, save_statistics,
)

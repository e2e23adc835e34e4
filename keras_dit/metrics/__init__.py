"""Metrics: FID with InceptionV3 features, and the evaluators of samples generated for the built-in digits and
for Alphabet-challenge parameter vectors."""

from keras_dit.metrics.alphabet import BACKGROUND_TOLERANCE, border_median, evaluate_alphabet
from keras_dit.metrics.digits import DigitsClassifier, digits_classifier, evaluate_digits
from keras_dit.metrics.fid import (
    InceptionFeatures, feature_statistics, fid, fid_statistics, frechet_distance, load_statistics, save_statistics,
)

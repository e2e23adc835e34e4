"""Evaluation of images generated for the built-in ``digits`` set, by a classifier trained on the real digits.

Generated images (any multiple of 8 px, 1 or 3 channels) are averaged back down to 8 x 8, the digits'
native size, and scored by a small scikit-learn MLP fitted once per image size on the fixed "train" split
of the real digits after the same upsample-downsample round trip. Its hidden layer (those of its 64 ReLU units
that real digits activate) is the feature space of a Frechet distance to all real digits.
"""

import functools

import numpy as np

from keras_dit.data.builtin import DIGIT_NAMES, digits_arrays
from keras_dit.data.images import to_float
from keras_dit.metrics.fid import feature_statistics, frechet_distance
from keras_dit.validation import check_labels


def _to_native(images):
    """(N, S, S, C) images -> (N, 64) gray values in [0, 16] on the digits' 8 x 8 grid."""
    x = (to_float(images).mean(axis=-1) + 1.0) * 8.0  # (N, S, S), [0, 16]
    if x.ndim != 3 or x.shape[1] != x.shape[2] or x.shape[1] % 8:
        raise ValueError(
            f"Digit images must be square with a side that is a multiple of 8, got shape {np.shape(images)}."
        )
    block = x.shape[1] // 8
    return x.reshape(len(x), 8, block, 8, block).mean(axis=(2, 4)).reshape(len(x), 64)


class DigitsClassifier:
    """An MLP (64 hidden units) on 8 x 8 digits, with the real digits' feature statistics.

    Attributes: ``test_accuracy`` (on the held-out "test" split), ``real_mu`` / ``real_sigma`` (hidden
    features of all 1797 real digits).
    """

    def __init__(self, image_size=32):
        from sklearn.neural_network import MLPClassifier
        from threadpoolctl import threadpool_limits

        train_images, train_labels = digits_arrays(image_size, 1, "train")
        self.mlp = MLPClassifier(hidden_layer_sizes=(64,), solver="lbfgs", alpha=1e-2, max_iter=500, random_state=0)
        with threadpool_limits(1):  # a tiny fit: BLAS threads only contend (20x slower on 2 busy cores)
            self.mlp.fit(_to_native(train_images) / 16.0, train_labels)
        test_images, test_labels = digits_arrays(image_size, 1, "test")
        self.test_accuracy = float(np.mean(self.predict(test_images) == test_labels))
        real = self._hidden(digits_arrays(image_size, 1, "all")[0])
        self._active = real.std(axis=0) > 0  # units never active on real digits would make sigma singular
        self.real_mu, self.real_sigma = feature_statistics(real[:, self._active])

    def predict(self, images):
        """(N,) predicted digit of each image."""
        return self.mlp.predict(_to_native(images) / 16.0)

    def _hidden(self, images):
        return np.maximum(_to_native(images) / 16.0 @ self.mlp.coefs_[0] + self.mlp.intercepts_[0], 0.0)

    def features(self, images):
        """(N, D) hidden-layer activations (the D <= 64 units active on real digits)."""
        return self._hidden(images)[:, self._active]


@functools.lru_cache(maxsize=None)
def digits_classifier(image_size=32):
    """The ``DigitsClassifier`` for ``image_size``, fitted on first use and kept in memory."""
    return DigitsClassifier(image_size)


def evaluate_digits(images, labels):
    """Score generated digits against the classes they were conditioned on.

    Args:
        images: uint8 (N, S, S, C) (or float in [-1, 1]), S a multiple of 8, C 1 or 3.
        labels: (N,) the class each image was generated for, 0-9.

    Returns a dict of plain numbers: ``accuracy`` (share classified as their label), ``per_class_accuracy``
    (name -> share, for the classes present), ``frechet_distance`` (to the real digits in the classifier's
    feature space; needs >= 2 images, and is biased upwards for small N), ``num_images`` and
    ``classifier_test_accuracy`` (the classifier's own accuracy on held-out real digits).
    """
    images = np.asarray(images)
    labels = check_labels(np.reshape(labels, -1), 9, "Digit labels")
    if images.ndim != 4 or len(images) != len(labels):
        raise ValueError(f"Expected images (N, S, S, C) and N labels, got {images.shape} and {labels.shape}.")
    classifier = digits_classifier(int(images.shape[1]))
    correct = classifier.predict(images) == labels
    mu, sigma = feature_statistics(classifier.features(images))
    return {
        "accuracy": float(np.mean(correct)),
        "per_class_accuracy": {DIGIT_NAMES[c]: float(np.mean(correct[labels == c])) for c in np.unique(labels)},
        "frechet_distance": frechet_distance(mu, sigma, classifier.real_mu, classifier.real_sigma),
        "num_images": int(len(images)),
        "classifier_test_accuracy": classifier.test_accuracy,
    }

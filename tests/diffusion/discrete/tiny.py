"""The tiny known data distribution of the discrete tests: S = 4 states, 2 x 2 one-channel images, 3 patterns."""

import numpy as np
from keras import ops

S = 4
PATTERNS = np.array([[0, 3, 3, 0], [3, 0, 0, 3], [1, 2, 2, 1]])  # (K, D) states, images read row by row
PROBS = np.array([0.5, 0.3, 0.2])


def true_model_fn(objective, uniform=False):
    """``model_fn(x, t)`` returning the log of the exact marginals p(x0_d | x_t) of the data distribution.

    With ``uniform`` it returns flat logits instead (a wrong model, to show the test can fail).
    """

    def model_fn(x, t):
        states = ops.convert_to_numpy(x).reshape(len(x), -1).astype(int)  # (B, D)
        if uniform:
            return ops.zeros((len(states), 2, 2, 1, S))
        p = objective.rate_matrix.transition_numpy(ops.convert_to_numpy(t).astype(np.float64))  # (B, S, S)
        rows = np.arange(len(states))[:, None]
        likelihood = np.stack([p[rows, pattern[None], states].prod(1) for pattern in PATTERNS], 1) * PROBS
        posterior = likelihood / likelihood.sum(1, keepdims=True)  # (B, K)
        marginals = np.einsum("bk,kds->bds", posterior, np.eye(S)[PATTERNS])
        return ops.convert_to_tensor(np.log(marginals + 1e-30).reshape(len(states), 2, 2, 1, S).astype("float32"))

    return model_fn


def total_variation(states):
    """TV distance between the empirical distribution of (N, 2, 2, 1) states and the data distribution."""
    codes = np.asarray(states).reshape(len(states), -1).astype(int) @ S ** np.arange(4)
    empirical = np.bincount(codes, minlength=S**4) / len(codes)
    true = np.zeros(S**4)
    true[PATTERNS @ S ** np.arange(4)] = PROBS
    return 0.5 * float(np.abs(empirical - true).sum())


def data_images(n, seed=0):
    """(n, 2, 2, 1) images in [-1, 1] drawn from the data distribution."""
    rng = np.random.default_rng(seed)
    states = PATTERNS[rng.choice(len(PROBS), n, p=PROBS)].reshape(n, 2, 2, 1)
    return (states * (2.0 / (S - 1)) - 1.0).astype("float32")

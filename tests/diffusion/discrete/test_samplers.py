"""Samplers: samples from the exact reverse rates of a known distribution match it (total variation)."""

import keras
import numpy as np
import pytest
from keras import ops

import keras_dit as kd
from keras_dit.diffusion.discrete import DiscreteCTMC, DiscreteEuler, TauLeaping
from tests.diffusion.discrete.tiny import S, total_variation, true_model_fn

N, STEPS, TV_BOUND = 600, 100, 0.08  # sampling noise alone gives TV ~ 0.02 at N = 600


def sample_states(objective, sampler, model_fn=None, num_steps=STEPS, n=N):
    noise = keras.random.normal((n, 2, 2, 1), seed=1)
    images = sampler.sample(model_fn or true_model_fn(objective), noise, num_steps, objective, seed=2)
    return ops.convert_to_numpy(objective.to_states(images))


@pytest.mark.parametrize(
    "rate,sampler",
    [("gaussian", TauLeaping()), ("uniform", DiscreteEuler()),
     ("gaussian", DiscreteEuler(num_corrector_steps=2, corrector_step_size_multiplier=0.5))],
    ids=["gaussian-tau", "uniform-euler", "gaussian-euler-pc"],
)
def test_true_reverse_rates_recover_the_data_distribution(rate, sampler):
    objective = DiscreteCTMC(S, rate, rate_const=3.0, rate_sigma=2.0, Q_sigma=2.0)
    tv = total_variation(sample_states(objective, sampler))
    print(f"{rate} {type(sampler).__name__} correctors={sampler.num_corrector_steps}: TV {tv:.4f}")
    assert tv < TV_BOUND, tv
    # The bound can fail: a model that knows nothing (flat logits) is far from the data.
    wrong = total_variation(sample_states(objective, sampler, true_model_fn(objective, uniform=True), 5, 300))
    assert wrong > 0.5, wrong


def test_tau_leaping_poisson_counts():
    """A single leap with constant rates: jump counts are Poisson (mean and variance h * rate)."""
    sampler = TauLeaping(max_jumps=30)
    rates = ops.convert_to_tensor(np.array([0.0, 0.0, 3.0, 0.0], "float32")[None, None, None, None].repeat(20000, 0))
    x = ops.zeros((20000, 1, 1, 1))
    seed = keras.random.SeedGenerator(0)
    # Offsets are s - x = 2 per jump to state 2 (before the clip to [0, S)); use S large enough not to clip.
    out = ops.convert_to_numpy(sampler._jump(x, ops.pad(rates, [[0, 0]] * 4 + [[0, 60]]), 1.0, 64, seed)) / 2.0
    assert abs(out.mean() - 3.0) < 0.06 and abs(out.var() - 3.0) < 0.15, (out.mean(), out.var())


def test_guided_sampling_shapes_and_seed():
    objective = DiscreteCTMC(S, "uniform")
    calls = []

    def denoise(x, t, condition):
        calls.append(int(x.shape[0]))
        return ops.zeros((*x.shape, S)) + ops.cast(condition, "float32")[:, None, None, None, None]

    model_fn = kd.diffusion.guidance.guided_model_fn(denoise, ops.ones((3,)), ops.zeros((3,)), guidance_scale=2.0)
    noise = keras.random.normal((3, 2, 2, 1), seed=0)
    a = TauLeaping().sample(model_fn, noise, 2, objective, seed=5)
    b = TauLeaping().sample(model_fn, noise, 2, objective, seed=5)
    assert set(calls) == {6}, calls  # conditional and unconditional halves in one batched call
    assert tuple(a.shape) == (3, 2, 2, 1)
    np.testing.assert_array_equal(ops.convert_to_numpy(a), ops.convert_to_numpy(b))


def test_bad_input():
    objective = DiscreteCTMC(S, "uniform")
    noise = np.zeros((2, 2, 2, 1), "float32")
    model_fn = true_model_fn(objective)
    for steps in (0, -1, 2.5):
        with pytest.raises(ValueError, match="num_steps"):
            TauLeaping().sample(model_fn, noise, steps, objective)
    with pytest.raises(ValueError, match="DiscreteCTMC"):
        TauLeaping().sample(model_fn, noise, 2, kd.diffusion.RectifiedFlow())
    with pytest.raises(ValueError, match="logits"):
        DiscreteEuler().sample(lambda x, t: ops.zeros((2, 2, 2, 1, S + 1)), noise, 2, objective)
    for kwargs, match in [({"min_t": 1.0}, "min_t"), ({"num_corrector_steps": -1}, "num_corrector_steps"),
                          ({"corrector_step_size_multiplier": 0}, "multiplier"), ({"max_jumps": 0}, "max_jumps")]:
        with pytest.raises(ValueError, match=match):
            TauLeaping(**kwargs)

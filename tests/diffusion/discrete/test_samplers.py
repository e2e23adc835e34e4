"""Samplers: samples from the exact reverse rates of a known distribution, and from a model trained on it, match it
(total variation); get_sampler and generate's default sampler."""

import keras
import numpy as np
import pytest
from keras import ops

import keras_dit as kd
from keras_dit.diffusion.discrete import DiscreteCTMC, DiscreteEuler, TauLeaping
from tests.diffusion.discrete.tiny import S, data_images, total_variation, true_model_fn

N, STEPS, TV_BOUND = 600, 100, 0.08  # sampling noise alone gives TV ~ 0.02 at N = 600
TRAINED_TV_BOUND = 0.2  # measured 0.11 (TensorFlow): model error on top of the sampling noise
NLL_WEIGHT, EPOCHS = 10.0, 20  # 320 steps of 128


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


def test_trained_model_recovers_the_data_distribution():
    """A tiny CategoricalBackbone trained with DiffusionModel.fit; generate's default sampler is tau-leaping."""
    keras.utils.set_random_seed(0)
    # One 2 x 2 patch: the patch embedding sees the whole image, so one block learns the joint posterior quickly.
    inner = kd.models.DiT(input_size=2, patch_size=2, in_channels=16, hidden_size=32, depth=1, num_heads=2, seed=0)
    # rate_const 1 mixes the S = 4 states by t = 1 (e^-4); the direct NLL term speeds up learning p(x0 | x_t).
    objective = DiscreteCTMC(S, "uniform", rate_const=1.0, nll_weight=NLL_WEIGHT)
    model = kd.tasks.DiffusionModel(kd.models.CategoricalBackbone(inner, S, 1), objective, seed=0)
    model.compile(optimizer=keras.optimizers.AdamW(3e-3, weight_decay=0.0))

    def sampled_tv():
        images = model.generate(num_images=N, num_steps=50, seed=1)
        return total_variation(np.round(images / 255.0 * (S - 1)))

    default = model.generate(num_images=4, num_steps=3, seed=7)
    np.testing.assert_array_equal(default, model.generate(num_images=4, num_steps=3, sampler=TauLeaping(), seed=7))
    with pytest.raises(ValueError, match="DDIM sampler samples GaussianDiffusion"):
        model.generate(num_images=4, sampler="ddim")
    before = sampled_tv()
    model.fit(data_images(2048), batch_size=128, epochs=EPOCHS, verbose=0)
    after = sampled_tv()
    print(f"trained tiny model: TV {before:.3f} before training, {after:.3f} after")
    assert before > 0.5 and after < TRAINED_TV_BOUND, (before, after)


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


def test_get_sampler_knows_the_discrete_samplers():
    objective = DiscreteCTMC(S, "uniform")
    get_sampler = kd.samplers.get_sampler
    assert kd.samplers.default_sampler(objective) == "tau_leaping"
    assert isinstance(get_sampler("tau_leaping", max_jumps=4), TauLeaping)
    assert isinstance(get_sampler("Tau_Leaping", objective), TauLeaping)
    assert isinstance(get_sampler("euler", objective), DiscreteEuler)  # the discrete Euler for a discrete objective
    assert isinstance(get_sampler("discrete_euler"), DiscreteEuler)
    assert isinstance(get_sampler("euler", kd.diffusion.RectifiedFlow()), kd.samplers.Euler)
    with pytest.raises(ValueError, match="DDIM sampler samples GaussianDiffusion.*DiscreteCTMC; use tau_leaping"):
        get_sampler("ddim", objective)
    with pytest.raises(ValueError, match="TauLeaping sampler samples DiscreteCTMC.*RectifiedFlow; use euler, heun"):
        get_sampler(TauLeaping(), kd.diffusion.RectifiedFlow())
    with pytest.raises(ValueError, match="DiscreteEuler sampler .*GaussianDiffusion; use ddpm, ddim, dpm_solver"):
        get_sampler("discrete_euler", kd.diffusion.GaussianDiffusion())
    with pytest.raises(ValueError, match="Unknown sampler 'tau'.*'tau_leaping'"):
        get_sampler("tau", objective)

"""DiffusionModel.generate's compiled sampling loop: equal to the samplers' own loop, cached, and current.

The compiled program (one fori_loop over sampler.step, the guided backbone inside) must give what
``sampler.sample`` gives with the same guided model function, noise and seed; weight updates and a changed
``compile(jit_compile=...)`` must take effect; guidance intervals must be checked and applied.
"""

import keras
import numpy as np
import pytest

import keras_dit as kd
from keras_dit.diffusion.guidance import guided_model_fn
from tests.helpers import assert_close

SIZE, CLASSES = 8, 4


def tiny_model(objective):
    keras.utils.set_random_seed(0)
    backbone = kd.models.DiT(input_size=SIZE, patch_size=2, in_channels=1, hidden_size=32, depth=1, num_heads=2,
                             num_classes=CLASSES, learn_sigma=getattr(objective, "learn_sigma", False), seed=1)
    for variable in backbone.trainable_variables:  # adaLN-Zero starts at 0: random weights make outputs matter
        variable.assign(0.1 * np.random.default_rng(len(variable.path)).standard_normal(variable.shape))
    model = kd.tasks.DiffusionModel(backbone, objective, seed=2)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3))
    return model


@pytest.fixture(scope="module")
def gaussian():
    return tiny_model(kd.diffusion.GaussianDiffusion(prediction="v", learn_sigma=True))


@pytest.fixture(scope="module")
def flow():
    return tiny_model(kd.diffusion.RectifiedFlow(shift=2.0))


def eager_reference(model, labels, num_steps, sampler, guidance_scale, seed, interval=None):
    """What generate must return: the sampler's own Python loop, with the same guided forward and noise."""
    sampler = kd.samplers.get_sampler(sampler, model.objective)
    cond = model._prepare_condition(labels)
    uncond = model.backbone.null_conditions(len(labels)) if guidance_scale != 1.0 else None
    shape = (len(labels), SIZE, SIZE, 1)
    model_fn = guided_model_fn(model._predict, cond, uncond, guidance_scale, model._guided_channels(shape),
                               interval, model.objective)
    noise = keras.random.normal(shape, seed=seed)
    return keras.ops.convert_to_numpy(sampler.sample(model_fn, noise, num_steps, model.objective, seed=seed + 1))


@pytest.mark.parametrize("sampler", [kd.samplers.DDIM(), kd.samplers.DDPM(), kd.samplers.DDIM(eta=0.5),
                                     kd.samplers.DPMSolverMultistep(order=3), kd.samplers.UniPC()],
                         ids=["ddim", "ddpm-learned", "ddim-eta", "dpm3", "unipc"])
def test_gaussian_loop_equals_the_sampler(gaussian, sampler):
    labels = [0, 3]
    ours = gaussian.generate(labels, num_steps=5, sampler=sampler, guidance_scale=2.5, seed=4, return_latents=True)
    assert_close(ours, eager_reference(gaussian, labels, 5, sampler, 2.5, 4), atol=1e-4, rtol=1e-4, what=repr(sampler))


@pytest.mark.parametrize("sampler", ["euler", "heun", "dpm_solver", "unipc"])
@pytest.mark.parametrize("guidance_scale,interval", [(1.0, None), (3.0, None), (3.0, (0.3, 0.8))])
def test_flow_loop_equals_the_sampler(flow, sampler, guidance_scale, interval):
    labels = [1, 2, 0]
    ours = flow.generate(labels, num_steps=4, sampler=sampler, guidance_scale=guidance_scale, seed=1,
                         guidance_interval=interval, return_latents=True)
    reference = eager_reference(flow, labels, 4, sampler, guidance_scale, 1, interval)
    assert_close(ours, reference, atol=1e-4, rtol=1e-4, what=f"{sampler}, scale {guidance_scale}, interval {interval}")


def test_guidance_interval(flow):
    run = lambda **kwargs: flow.generate([1, 2], num_steps=4, seed=3, return_latents=True, **kwargs)  # noqa: E731
    plain, guided = run(), run(guidance_scale=4.0)
    # Euler on shift(linspace(1, 0, 5)) with shift 2 evaluates at noise levels 1, 0.86, 0.67, 0.4.
    assert_close(run(guidance_scale=4.0, guidance_interval=(0.0, 0.2)), plain, atol=1e-5, what="no step inside")
    assert_close(run(guidance_scale=4.0, guidance_interval=(0.0, 1.0)), guided, atol=1e-5, what="every step")
    partly = run(guidance_scale=4.0, guidance_interval=(0.5, 0.9))
    assert np.abs(partly - plain).max() > 1e-3 and np.abs(partly - guided).max() > 1e-3


@pytest.mark.parametrize("interval", [(-0.1, 0.5), (0.2, 1.5), (0.7, 0.3), "high", (0.5,)])
def test_bad_guidance_interval(flow, interval):
    with pytest.raises(ValueError, match="guidance_interval must"):
        flow.generate([1], num_steps=2, guidance_scale=2.0, guidance_interval=interval)


def test_programs_are_cached_per_configuration(flow):
    flow.__dict__.pop("_sampling_programs", None)
    flow.generate([1, 2], num_steps=3, seed=0)
    flow.generate([0, 3], num_steps=3, seed=5)
    assert len(flow._sampling_programs) == 1
    flow.generate([1, 2], num_steps=4, seed=0)
    flow.generate([1, 2, 3], num_steps=3, seed=0)
    flow.generate([1, 2], num_steps=3, seed=0, sampler="heun")
    assert len(flow._sampling_programs) == 4


def test_weight_updates_and_jit_compile_take_effect():
    model = tiny_model(kd.diffusion.RectifiedFlow())
    before = model.generate([1, 2], num_steps=3, seed=0, return_latents=True)
    images = np.random.default_rng(0).uniform(-1, 1, (4, SIZE, SIZE, 1)).astype("float32")
    model.fit(images, np.array([0, 1, 2, 3]), batch_size=4, epochs=1, verbose=0)  # more training
    after = model.generate([1, 2], num_steps=3, seed=0, return_latents=True)
    assert np.abs(after - before).max() > 1e-4, "generate did not see the trained weights"
    assert_close(after, eager_reference(model, [1, 2], 3, "euler", 1.0, 0), atol=1e-4, rtol=1e-4, what="after training")
    model.compile(optimizer=keras.optimizers.AdamW(1e-3), jit_compile=not model.jit_compile)
    recompiled = model.generate([1, 2], num_steps=3, seed=0, return_latents=True)
    assert len(model._sampling_programs) == 2, "compile(jit_compile=...) did not give a new program"
    assert_close(recompiled, after, atol=1e-4, rtol=1e-4, what="after compile(jit_compile=...)")

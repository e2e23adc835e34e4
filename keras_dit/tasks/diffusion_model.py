"""``DiffusionModel``: a backbone and an objective joined into a ``keras.Model`` that users ``fit``.

Training data are ``(images, condition)`` tuples, ``{"images": ..., "condition": ...}`` dicts or images
alone (unconditional), from NumPy arrays, a ``tf.data.Dataset`` or a ``keras.utils.PyDataset``. With an
``autoencoder`` the images are encoded to latents on the fly; without one they are used as they are (pixels).
``{"latents": ..., "condition": ...}`` batches (what ``kd.data.read_latent_cache`` yields) hold diffusion
latents, already encoded and scaled, which the backbone takes as they are; the model still holds the autoencoder
that wrote them, to decode what it generates. Each step draws noise and
timesteps from a ``SeedGenerator`` the model owns, so ``fit`` is jit-compiled and reproducible on every backend.
"""

import math

import keras
import numpy as np
from keras import ops

from keras_dit.backend import build_optimizer_before_fit, compiled_function, compiled_inference
from keras_dit.data.images import check_image_range
from keras_dit.diffusion.guidance import check_guidance_interval, guided_model_fn
from keras_dit.diffusion.samplers import default_sampler, get_sampler, step_coefficients
from keras_dit.diffusion.samplers.base import make_seed_generator
from keras_dit.distribution import scale_loss_for_replicas
from keras_dit.ema import ema_weights, training_weights_kept
from keras_dit.validation import check_nonnegative, check_range


def _unpack(data):
    """Training batch -> ``{"images" | "latents": ..., "condition": ..., "sample_weight": ...}``, absent entries
    left out. Tuples are ``(images, condition, sample_weight)``; a bare array is images."""
    if isinstance(data, dict):
        sources = [key for key in ("images", "latents") if key in data]
        if len(sources) != 1:
            raise ValueError(
                "A dict batch needs exactly one of 'images' (encoded by the autoencoder, if any) and 'latents' "
                f"(diffusion latents, already encoded and scaled, as kd.data.read_latent_cache yields them); got "
                f"keys {sorted(data)}."
            )
        keys = (sources[0], "condition", "sample_weight")
        return {key: data[key] for key in keys if data.get(key) is not None}
    if isinstance(data, (tuple, list)):
        if not 1 <= len(data) <= 3:
            raise ValueError(
                f"Expected (images,), (images, condition) or (images, condition, weights); got {len(data)} items.")
        return {key: value for key, value in zip(("images", "condition", "sample_weight"), data) if value is not None}
    return {"images": data}


def _known_dims_differ(shape, expected):
    """Whether ``shape`` (B, ...) contradicts ``expected`` (...) in a dimension known on both sides (graph
    tracing may leave dimensions unknown)."""
    shape = tuple(shape)[1:]
    return len(shape) != len(expected) or any(s is not None and s != e for s, e in zip(shape, expected))


def _check_output_channels(backbone, objective):
    """The backbone must output the channels the objective reads (``objective.prediction_channels``): twice the
    input's for a learned variance (``learn_sigma``). Checked at construction, before any training."""
    prediction_channels = getattr(objective, "prediction_channels", None)
    inputs, output = getattr(backbone, "input", None), getattr(backbone, "output", None)
    if prediction_channels is None or not isinstance(inputs, dict) or "x" not in inputs or output is None:
        return
    in_channels, out_channels = inputs["x"].shape[-1], output.shape[-1]
    expected = prediction_channels(in_channels)
    if out_channels != expected:
        sigma = getattr(objective, "learn_sigma", False)
        raise ValueError(
            f"The backbone outputs {out_channels} channels for {in_channels} input channels, but "
            f"{type(objective).__name__}(learn_sigma={sigma}) reads {expected}. Build both with the same "
            f"learn_sigma (e.g. DiT(..., learn_sigma={sigma}) or {type(objective).__name__}(learn_sigma="
            f"{out_channels == 2 * in_channels}))."
        )


class NaNLossGuard(keras.callbacks.Callback):
    """Stops ``fit`` at the first non-finite loss, before any checkpoint of that epoch is written.

    Args:
        advice: what the error tells the user to do, in the terms of the interface they train with (the
            command line passes ``--set`` keys); the default speaks Python.
    """

    ADVICE = ("Lower the learning rate, add gradient clipping (e.g. AdamW(clipnorm=1.0)), or train in float32 "
              "instead of a mixed-precision policy.")

    def __init__(self, advice=None):
        super().__init__()
        self.advice = advice or self.ADVICE

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            step = int(ops.convert_to_numpy(self.model.optimizer.iterations))
            raise FloatingPointError(
                f"The loss became {float(loss)} at training step {step} (batch {batch} of this epoch). "
                f"{self.advice} No checkpoint was written for this epoch."
            )


@keras.saving.register_keras_serializable(package="keras_dit")
class DiffusionModel(keras.Model):
    """Trains a denoising backbone with a diffusion objective and generates images with a sampler.

    Args:
        backbone: a ``keras_dit.models`` backbone (DiT, UViT, ReiMei).
        objective: ``kd.diffusion.GaussianDiffusion`` or ``kd.diffusion.RectifiedFlow``.
        autoencoder: optional frozen ``KLVAE`` (latent diffusion); training images are encoded, generated
            latents decoded, and it is saved with the model, so a ``.keras`` file makes images alone. Train on a
            latent cache with the autoencoder that wrote it: ``{"latents": ...}`` batches only skip the encoding.
        scale_factor, shift_factor: latents fed to the backbone are ``(z - shift) * scale`` (scalars or one
            value per channel). ``None`` takes the autoencoder's own (``kd.compute_scale_factor`` stores them
            there; an autoencoder without a scale factor is an error), else 1 and 0 (pixels).
        cfg_dropout: rate at which training replaces the condition by the null condition, for
            classifier-free guidance. ``None`` keeps the rate the backbone was built with (DiT's
            ``class_dropout_prob``); a number sets it. The dropout itself lives in the backbone's condition
            embedding, where the null condition is learned.
        seed: seed of the noise and timestep draws.
        repa: optional ``kd.losses.REPA``: adds its alignment loss between a block's tokens and a frozen encoder's
            features of the clean training images (pixel or autoencoder training, not cached latents).

    Calling the model on a batch returns the per-sample training losses; ``generate`` makes images.

    Example:
    >>> model = DiffusionModel(DiT(...), kd.diffusion.RectifiedFlow())
    >>> model.compile(optimizer=keras.optimizers.AdamW(1e-4, use_ema=True))
    >>> model.fit(images, labels, epochs=10)
    >>> model.generate([3, 7], guidance_scale=4.0, num_steps=50, seed=0)  # (2, H, W, C) uint8
    """

    def __init__(
        self,
        backbone,
        objective,
        autoencoder=None,
        scale_factor=None,
        shift_factor=None,
        cfg_dropout=None,
        seed=None,
        repa=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        _check_output_channels(backbone, objective)
        self.backbone = backbone
        self.repa = repa
        if repa is not None:  # a view of the backbone's own layers: kept out of Keras' tracking (no new weights)
            object.__setattr__(self, "_repa_features", repa.attach(backbone))
        self.objective = objective
        self.autoencoder = None
        self.scale_factor = scale_factor
        self.shift_factor = shift_factor
        if autoencoder is not None:
            self._set_autoencoder(autoencoder)
        self.latent_factors()  # checks the factors now, not at the first batch
        self.cfg_dropout = cfg_dropout
        if cfg_dropout is not None:
            check_range("cfg_dropout", cfg_dropout, 0, 1, "[)", hint="0 turns classifier-free guidance off")
            self._set_condition_dropout(cfg_dropout)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.built = True

    def _set_condition_dropout(self, rate):
        embedding = self.backbone.condition_embedding
        if embedding is None:
            raise ValueError("cfg_dropout was given, but the backbone is unconditional.")
        if rate > 0 and self.backbone.null_conditions(1) is None:
            raise ValueError(
                f"cfg_dropout={rate} needs a null condition, but the backbone was built without one; "
                "build it with class_dropout_prob > 0."
            )
        embedding.dropout_prob = rate

    @property
    def is_conditional(self):
        return "condition" in self.backbone.input

    # ----------------------------------------------------------------------------------------------------
    # Training
    # ----------------------------------------------------------------------------------------------------

    def _set_autoencoder(self, autoencoder):
        """Hold ``autoencoder`` (frozen), after checking that its latents are what the backbone takes."""
        channels = self.backbone.input["x"].shape[-1]
        if autoencoder.latent_channels != channels:
            raise ValueError(
                f"The autoencoder makes {autoencoder.latent_channels}-channel latents but the backbone takes "
                f"in_channels={channels}; build the backbone with in_channels={autoencoder.latent_channels}."
            )
        # The setter freezes the sublayers too, but TensorFlow skips it for an unchanged value (Keras 3.15) and a VAE
        # loaded with trainable=False has trainable sublayers (tests/tasks/test_latent_diffusion.py checks it).
        autoencoder.trainable = True
        autoencoder.trainable = False
        self.autoencoder = autoencoder

    def attach_autoencoder(self, autoencoder):
        """Give a latent model saved without its VAE (by keras_dit before models carried it) the VAE its latent
        cache was written with, so ``generate`` decodes images; save the model again to keep it.

        Such models hold ``scale_factor=1.0`` (their cache's latents were already scaled); from now on the
        factors are the autoencoder's, as for a model built with it."""
        self._set_autoencoder(autoencoder)
        self.scale_factor = self.shift_factor = None
        self.latent_factors()

    def latent_factors(self):
        """(scale, shift) as float32 arrays (scalars or per channel): this model's, else the autoencoder's.

        A model with an autoencoder needs a scale factor (its own or the autoencoder's): without one the
        backbone would see latents of arbitrary spread, which is what makes latent samples unreadable."""
        scale = self.scale_factor if self.scale_factor is not None else getattr(self.autoencoder, "scale_factor", None)
        shift = self.shift_factor if self.shift_factor is not None else getattr(self.autoencoder, "shift_factor", None)
        if scale is None and self.autoencoder is not None:
            raise ValueError(
                "The autoencoder has no scale_factor: measure it first with kd.compute_scale_factor(vae, images) "
                "(keras-dit scale-factor), or pass scale_factor=1.0 to diffuse its latents unscaled."
            )
        scale = np.asarray(1.0 if scale is None else scale, "float32")
        shift = np.asarray(0.0 if shift is None else shift, "float32")
        channels = self.backbone.input["x"].shape[-1]
        for name, value in (("scale_factor", scale), ("shift_factor", shift)):
            if value.ndim > 1 or value.size not in (1, channels) or not np.all(np.isfinite(value)):
                raise ValueError(f"{name}={value.tolist()} must be a finite number or {channels} finite numbers (one "
                                 "per latent channel); measure it again with kd.compute_scale_factor.")
        if np.any(scale == 0):
            raise ValueError(f"scale_factor={scale.tolist()} has a zero; it multiplies the latents and must be "
                             "nonzero (measure it with kd.compute_scale_factor).")
        return scale, shift

    def encode(self, images):
        """Images -> the latents the backbone sees, ``(z - shift) * scale``.

        z is the autoencoder's posterior sample of ``images``, or ``images`` themselves without an autoencoder
        (pixels, or unscaled latents). Batches of already-scaled diffusion latents (``{"latents": ...}``, as
        ``kd.data.read_latent_cache`` yields them) skip this step: images are told from latents by that key,
        never by shape, which graph tracing can leave unknown.
        """
        z = ops.cast(images, "float32")
        if self.autoencoder is not None:
            z = self.autoencoder.encode(z).sample(self.seed_generator)
        self._check_latent_shape(z.shape, images.shape, encoded=self.autoencoder is not None)
        scale, shift = self.latent_factors()
        return (z - shift) * scale

    def _check_latent_shape(self, z_shape, batch_shape, encoded=False):
        latent_shape = tuple(self.backbone.input["x"].shape[1:])
        if _known_dims_differ(z_shape, latent_shape):
            raise ValueError(
                f"Training batches have shape {tuple(batch_shape)}; the backbone takes (B, *{latent_shape})"
                + (" latents, and the autoencoder turns the images into latents of shape "
                   f"(B, *{tuple(z_shape[1:])})" if encoded else "")
                + ". Match the backbone's input_size / in_channels to the data."
            )

    def decode(self, latents):
        """Diffusion latents -> images in [-1, 1] (the autoencoder decodes ``z / scale + shift``)."""
        scale, shift = self.latent_factors()
        if self.autoencoder is None and self.scale_factor is not None:
            raise ValueError(
                "This model diffuses latents (scale_factor is set) but holds no autoencoder to decode them: it was "
                "saved by a keras_dit from before models carried their VAE. Load that VAE and call "
                "model.attach_autoencoder(keras.saving.load_model('vae.keras')), then model.save(...), or retrain."
            )
        z = latents / scale + shift
        return self.autoencoder.decode(z) if self.autoencoder is not None else z

    def denoise(self, x, t, condition=None, training=False):
        """The backbone's raw prediction at native objective time ``t``."""
        inputs = {"x": x, "t": self.objective.model_time(t)}
        if condition is not None:
            inputs["condition"] = condition
        return self.backbone(inputs, training=training)

    def call(self, inputs, training=False):
        batch = _unpack(inputs)
        condition = batch.get("condition")
        if self.is_conditional and condition is None:
            raise ValueError("This model is conditional: fit it on (images, condition) pairs.")
        if "latents" in batch:
            x0 = ops.cast(batch["latents"], "float32")  # (B, h, w, c) diffusion latents, already scaled
            self._check_latent_shape(x0.shape, x0.shape)
        else:
            x0 = self.encode(batch["images"])
        noise = keras.random.normal(ops.shape(x0), seed=self.seed_generator)
        t = self.objective.sample_training_time(ops.shape(x0)[0], self.seed_generator)
        x_t = self.objective.add_noise(x0, noise, t)
        condition = condition if self.is_conditional else None
        if self.repa is not None:
            return self._loss_with_repa(batch, x0, noise, t, x_t, condition, training)
        prediction = self.denoise(x_t, t, condition, training=training)
        return self.objective.loss(prediction, x0, noise, t, x_t)  # (B,)

    def _loss_with_repa(self, batch, x0, noise, t, x_t, condition, training):
        """(B,) objective loss plus REPA's alignment loss, from one backbone forward that also returns the block's
        tokens."""
        if "images" not in batch:
            raise ValueError(
                "REPA aligns with an encoder's features of the clean images, but this batch holds cached latents; "
                "train on images (with the autoencoder in the model) or build the DiffusionModel without repa."
            )
        inputs = {"x": x_t, "t": self.objective.model_time(t)}
        if condition is not None:
            inputs["condition"] = condition
        prediction, tokens = self._repa_features(self.backbone.check_inputs(inputs), training=training)
        return self.objective.loss(prediction, x0, noise, t, x_t) + self.repa(tokens, batch["images"])

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        weights = _unpack(x).get("sample_weight")
        if weights is None:
            loss = ops.mean(y_pred)
        else:
            weights = ops.cast(weights, y_pred.dtype)
            loss = ops.sum(y_pred * weights) / ops.maximum(ops.sum(weights), 1e-12)
        for extra in self.losses:
            loss = loss + ops.sum(extra)
        return scale_loss_for_replicas(loss)  # a MirroredStrategy sums the replicas' gradients

    def _with_batch_as_inputs(self, args):
        """Keras splits a batch into x / y / sample_weight; the whole batch is the model's input here."""
        *state, data = args
        return (*state, (_unpack(data),))

    def train_step(self, *args):
        return super().train_step(*self._with_batch_as_inputs(args))

    def test_step(self, *args):
        return super().test_step(*self._with_batch_as_inputs(args))

    def fit(self, *args, callbacks=None, **kwargs):
        """``keras.Model.fit`` that keeps the raw training weights at its end (Keras would copy the EMA over
        them, see ``kd.tasks.ema``), so ``fit`` again, ``save`` and resume continue the run exactly; and that
        stops with a clear error on a NaN loss (see ``NaNLossGuard``)."""
        self._check_training_data(*args[:2], y=kwargs.get("y"), x=kwargs.get("x"))
        callbacks = list(callbacks or [])
        if not any(isinstance(c, NaNLossGuard) for c in callbacks):
            callbacks.insert(0, NaNLossGuard())
        build_optimizer_before_fit(self)
        with training_weights_kept(self):
            return super().fit(*args, callbacks=callbacks, **kwargs)

    def _check_training_data(self, *args, x=None, y=None):
        """Check, before any step, what ``fit`` will see first: NumPy data whole, a ``PyDataset``'s first batch
        (``tf.data`` and generators are left to the step). Images must be in [-1, 1] (for a pixel model or the
        autoencoder's input) and of the shape the backbone takes (through the autoencoder); labels valid for the
        backbone (integers in [0, num_classes)): inside a compiled step a bad label gives NaN or a backend's gather
        error instead, and TensorFlow traces the step with unknown shapes."""
        x = args[0] if args else x
        y = args[1] if len(args) > 1 else y
        if isinstance(x, keras.utils.PyDataset):
            batch = x[0] if len(x) else None
        else:
            batch = x if y is None else (x, y)
        if batch is None or not isinstance(batch, (np.ndarray, tuple, list, dict)):
            return
        batch = _unpack(batch)
        images, condition = batch.get("images"), batch.get("condition")
        is_pixels = self.autoencoder is not None or (self.scale_factor is None and self.shift_factor is None)
        discrete = getattr(self.objective, "num_states", None) is not None  # categorical states, not [-1, 1]
        if isinstance(images, np.ndarray) and is_pixels and not discrete:
            check_image_range(images, "Training images")
            # The step's shapes are unknown when TensorFlow traces it: check them here.
            encoded = self.autoencoder is not None
            shape = self.autoencoder.latent_shape(images.shape) if encoded else images.shape
            self._check_latent_shape(shape, images.shape, encoded=encoded)
        if isinstance(condition, np.ndarray) and self.is_conditional:
            self.backbone.prepare_condition(condition, len(condition))

    def evaluate(self, *args, **kwargs):
        """``keras.Model.evaluate`` with the EMA weights, if the optimizer keeps them (also for ``fit``'s
        validation)."""
        with self.ema_weights():
            return super().evaluate(*args, **kwargs)

    # ----------------------------------------------------------------------------------------------------
    # Sampling
    # ----------------------------------------------------------------------------------------------------

    def generate(
        self,
        condition=None,
        negative_condition=None,
        num_steps=50,
        sampler=None,
        guidance_scale=1.0,
        seed=None,
        num_images=None,
        return_latents=False,
        guidance_interval=None,
    ):
        """Sample images: uint8 NumPy (B, H, W, C).

        The whole denoising loop (backbone, guidance and sampler update) runs as one compiled program, built
        once per (sampler, steps, batch shape, guidance on or off, interval) and reused: see
        ``_sampling_program``. Discrete-state samplers run their own loop around a compiled forward.

        Args:
            condition: (B,) labels (or the backbone's condition kind); ``None`` for an unconditional
                model, with ``num_images``.
            negative_condition: replaces the unconditional branch of CFG (a negative prompt).
            num_steps: sampler steps.
            sampler: a ``kd.samplers`` instance or name; default DDIM for Gaussian objectives, Euler for
                rectified flow and tau-leaping for ``DiscreteCTMC``.
            guidance_scale: classifier-free guidance scale; 1 is a single plain conditional forward.
            seed: makes the result reproducible: the same seed gives the same images.
            return_latents: return the sampled latents (float) instead of decoded uint8 images.
            guidance_interval: ``(lo, hi)`` in [0, 1]: guide only at noise levels in that interval (0 = data,
                1 = noise; ``kd.diffusion.guidance.noise_level``), the conditional prediction elsewhere.
        """
        sampler = get_sampler(default_sampler(self.objective) if sampler is None else sampler, self.objective)
        interval = check_guidance_interval(guidance_interval)
        check_nonnegative("guidance_scale", guidance_scale, hint="1 is no guidance, 0 the unconditional model")
        cond, uncond, batch = self._sampling_conditions(condition, negative_condition, guidance_scale, num_images)
        shape = (batch, *self.backbone.input["x"].shape[1:])
        noise_seed, sampler_seed = (None, None) if seed is None else (int(seed), int(seed) + 1)
        noise = keras.random.normal(shape, seed=noise_seed)
        with self.ema_weights():
            if sampler.has_steps:
                latents = self._sample_compiled(sampler, noise, num_steps, cond, uncond, guidance_scale, interval,
                                                sampler_seed)
            else:
                model_fn = guided_model_fn(self._predict, cond, uncond, guidance_scale, self._guided_channels(shape),
                                           interval, self.objective)
                latents = sampler.sample(model_fn, noise, num_steps, self.objective, seed=sampler_seed)
            if return_latents:
                return ops.convert_to_numpy(latents)
            images = ops.convert_to_numpy(self.decode(latents))
        return np.clip(np.round((images + 1.0) * 127.5), 0, 255).astype("uint8")

    def _guided_channels(self, shape):
        """Guidance mixes the prediction channels only, not DiT's learned-variance channels."""
        return shape[-1] if getattr(self.objective, "learn_sigma", False) else None

    def _sample_compiled(self, sampler, noise, num_steps, cond, uncond, guidance_scale, interval, seed):
        """``sampler``'s trajectory from ``noise`` by the compiled program of ``_sampling_program``: the step
        tables and the stochastic samplers' per-step noise (drawn here, in order) are its inputs."""
        tables = sampler.coefficients(num_steps, self.objective)
        x = sampler.check_noise(noise)
        noises = None
        if sampler.stochastic:
            generator = make_seed_generator(seed)
            noises = ops.stack([sampler.noise_like(x, generator) for _ in range(num_steps)])
        guided = uncond is not None and guidance_scale != 1.0
        program = self._sampling_program(sampler, num_steps, tuple(x.shape), guided, interval)
        tables = {key: ops.convert_to_tensor(value.astype("float32")) for key, value in tables.items()}
        scale = ops.convert_to_tensor(guidance_scale, "float32")
        return program(x, cond, uncond if guided else None, scale, tables, noises)

    def _sampling_program(self, sampler, num_steps, shape, guided, interval):
        """The compiled sampling loop ``(x, cond, uncond, scale, tables, noises) -> x0``, cached per configuration.

        One ``keras.ops.fori_loop`` over ``sampler.step`` with the guided backbone forward inside, compiled by
        ``kd.backend.compiled_function``: one XLA program on JAX; a ``tf.function`` compiled with XLA on
        TensorFlow; on PyTorch, whose trace would unroll the loop, the step is traced once and the loop runs in
        Python. The key holds what the program's code depends on: the sampler's class and configuration, the
        step count, the batch shape, whether guidance runs (and its interval) and ``jit_compile``; guidance
        scale, step coefficients and weights are inputs.
        """
        key = (repr(sampler), num_steps, shape, guided, interval, self.jit_compile)
        programs = self.__dict__.setdefault("_sampling_programs", {})
        if key not in programs:
            objective, channels = self.objective, self._guided_channels(shape)

            def step(x, state, coefficients, noise, cond, uncond, scale):
                model_fn = guided_model_fn(self.denoise, cond, uncond if guided else None, scale, channels,
                                           interval, objective)
                return sampler.step(model_fn, x, coefficients, state, objective, noise)

            def loop(step, x, cond, uncond, scale, tables, noises):
                def body(i, carry):
                    noise = None if noises is None else noises[i]
                    return step(*carry, step_coefficients(tables, i), noise, cond, uncond, scale)

                return ops.fori_loop(0, num_steps, body, (x, sampler.initial_state(x)))[0]

            variables = self.backbone.variables
            if keras.backend.backend() == "torch":  # a Python loop: the flags are numbers, one trace per value
                traced_step = compiled_function(step, variables)

                def specialised_step(x, state, coefficients, *args):
                    flags = {name: float(coefficients[name]) for name in sampler.branch_coefficients}
                    return traced_step(x, state, {**coefficients, **flags}, *args)

                programs[key] = lambda *args: loop(specialised_step, *args)
            else:
                # TensorFlow samples with XLA even where Keras leaves training without it (CPU): one compilation
                # per configuration for 1.2-1.8x diffusers' speed against 0.8-1.0x as a graph
                # (benchmarks/sampler_speed.py)
                xla = self.jit_compile or keras.backend.backend() == "tensorflow"
                programs[key] = compiled_function(lambda *args: loop(step, *args), variables, jit_compile=xla)
        return programs[key]

    def _predict(self, x, t, condition):
        """One compiled backbone forward (compiled once per input shape, see ``compiled_inference``; with XLA on
        TensorFlow when the model compiles its training step with XLA: ``compile(jit_compile=...)``)."""
        inputs = {"x": ops.convert_to_tensor(x), "t": self.objective.model_time(t)}
        if condition is not None:
            inputs["condition"] = ops.convert_to_tensor(condition)
        compiled = self.__dict__.setdefault("_compiled_backbones", {})
        if self.jit_compile not in compiled:
            compiled[self.jit_compile] = compiled_inference(self.backbone, jit_compile=self.jit_compile)
        return compiled[self.jit_compile](inputs)

    def _sampling_conditions(self, condition, negative_condition, guidance_scale, num_images):
        if not self.is_conditional:
            if condition is not None or negative_condition is not None:
                raise ValueError("This model is unconditional: call generate(num_images=N) without a condition.")
            if guidance_scale != 1.0:
                raise ValueError("guidance_scale needs a conditional model; this one is unconditional.")
            if not num_images or num_images < 1:
                raise ValueError("An unconditional model needs num_images >= 1.")
            return None, None, int(num_images)
        if condition is None:
            raise ValueError("This model is conditional: pass a condition (e.g. class labels) to generate().")
        cond = self._prepare_condition(condition)
        batch = int(cond.shape[0])
        if num_images is not None and num_images != batch:
            raise ValueError(f"num_images={num_images} does not match the condition batch of {batch}.")
        uncond = None
        if negative_condition is not None:
            uncond = self._prepare_condition(negative_condition)
            if int(uncond.shape[0]) != batch:
                raise ValueError(
                    f"negative_condition has batch {int(uncond.shape[0])}, the condition has {batch}; give one "
                    "negative condition per image."
                )
        elif guidance_scale != 1.0:
            uncond = self.backbone.null_conditions(batch)
            if uncond is None:
                raise ValueError(
                    f"guidance_scale={guidance_scale} needs a null condition, but this backbone was trained "
                    "without one (class_dropout_prob=0). Use guidance_scale=1.0, or train with "
                    "class_dropout_prob > 0."
                )
        return cond, uncond, batch

    def _prepare_condition(self, condition):
        """Raw conditions (labels, names such as "seven", tag strings, vectors) encoded and checked eagerly by the
        backbone's conditioner: inside the compiled forward their values could not be checked."""
        return ops.convert_to_tensor(self.backbone.prepare_condition(condition))

    def ema_weights(self):
        """Context manager: the optimizer's EMA weights (``AdamW(use_ema=True)``) swapped in, the raw training
        weights restored on exit (a no-op without EMA). ``generate`` and ``evaluate`` run inside it; so does an
        explicit export: ``with model.ema_weights(): model.backbone.save("ema_backbone.keras")``."""
        return ema_weights(self)

    # ----------------------------------------------------------------------------------------------------
    # Saving
    # ----------------------------------------------------------------------------------------------------

    def _seed_states(self):
        """The states of every ``SeedGenerator`` in the model: ``variables`` is ``weights`` plus those (Keras 3)."""
        weights = {id(w) for w in self.weights}
        return [v for v in self.variables if id(v) not in weights]

    def save_own_variables(self, store):
        """Also saves the seed generators' states, so a resumed run draws the noise it would have drawn."""
        super().save_own_variables(store)
        for i, state in enumerate(self._seed_states()):
            store[f"seed_state_{i}"] = state

    def load_own_variables(self, store):
        seed_keys = {k for k in store.keys() if str(k).startswith("seed_state_")}
        super().load_own_variables({k: store[k] for k in store.keys() if k not in seed_keys})
        for i, state in enumerate(self._seed_states()):
            if f"seed_state_{i}" in seed_keys:
                state.assign(store[f"seed_state_{i}"])

    def get_config(self):
        serialize = keras.saving.serialize_keras_object
        return {
            **super().get_config(),
            "backbone": serialize(self.backbone),
            "objective": serialize(self.objective),
            "autoencoder": serialize(self.autoencoder) if self.autoencoder is not None else None,
            "scale_factor": self.scale_factor,
            "shift_factor": self.shift_factor,
            "cfg_dropout": self.cfg_dropout,
            "seed": self.seed,
            **({} if self.repa is None else {"repa": serialize(self.repa)}),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("backbone", "objective", "autoencoder", "repa"):
            if config.get(key) is not None:
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)

"""Continuous parameter-vector conditioning (e.g. ReiMei's 27 shape parameters)."""

import keras
import numpy as np
from keras import ops

from keras_dit.conditioning.base import Conditioner
from keras_dit.layers.mlp import Mlp
from keras_dit.validation import check_positive


@keras.saving.register_keras_serializable(package="keras_dit")
class ParameterConditioner(Conditioner):
    """(B, P) parameter vectors -> ``(vector (B, D), tokens (B, P, D))``.

    Each parameter becomes one token: its value scales a learned per-parameter direction, plus a learned
    per-parameter bias (so tokens know which parameter they carry), then a shared MLP. The vector is an MLP of
    the whole vector. NaN marks a parameter as *unspecified*: its token is a learned "missing" embedding and
    the pooled MLP sees a missing flag instead of the value. The null condition is the all-NaN vector.

    Args:
        num_parameters: length P of the vectors; other lengths are an error.
        hidden_size: width D.
        mlp_ratio: expansion of the two MLPs.
        dropout_prob: CFG condition-dropout rate.
        parameter_names: optional list of ``num_parameters`` names, in vector order (saved with the model).
        seed: seed of the dropout.
    """

    description = "conditioned on parameter vectors"
    fields = ("params", "param_names")

    def __init__(self, num_parameters, hidden_size, mlp_ratio=4.0, dropout_prob=0.1, parameter_names=None, seed=None,
                 **kwargs):
        super().__init__(hidden_size, dropout_prob, seed, **kwargs)
        if num_parameters < 1:
            raise ValueError(f"num_parameters must be >= 1, got {num_parameters}.")
        if parameter_names is not None and len(parameter_names) != num_parameters:
            raise ValueError(f"parameter_names has {len(parameter_names)} names but num_parameters={num_parameters}; "
                             "give one per parameter.")
        check_positive("mlp_ratio", mlp_ratio)
        self.num_parameters = num_parameters
        self.parameter_names = None if parameter_names is None else [str(name) for name in parameter_names]
        self.mlp_ratio = mlp_ratio
        self.condition_shape = (num_parameters,)
        width = int(hidden_size * mlp_ratio)
        self.pooled_in = keras.layers.Dense(hidden_size, name="pooled_in")
        self.pooled_mlp = Mlp(hidden_size, width, name="pooled_mlp")
        self.token_mlp = Mlp(hidden_size, width, name="token_mlp")

    @property
    def num_tokens(self):
        return self.num_parameters

    @property
    def names(self):
        return self.parameter_names

    def null_condition(self, batch_size):
        return np.full((batch_size, self.num_parameters), np.nan, dtype="float32")

    def encode(self, condition):
        values = np.asarray(condition, dtype="float32")
        if values.ndim == 1:
            values = values[None]
        if values.ndim != 2 or values.shape[1] != self.num_parameters:
            raise ValueError(
                f"Parameter vectors must have {self.num_parameters} values, got shape {values.shape}. "
                + self._shape_hint()
            )
        self.validate(values)
        return values

    def validate(self, values):
        if np.any(np.isinf(values)):
            raise ValueError("Parameter vectors must be finite (NaN marks an unspecified value); got inf.")

    def _shape_hint(self):
        return f"Pass (B, {self.num_parameters}) vectors; NaN marks an unspecified value."

    def build(self, input_shape):
        if input_shape[-1] not in (None, self.num_parameters):
            raise ValueError(
                f"ParameterConditioner was built for {self.num_parameters} parameters, got vectors of length "
                f"{input_shape[-1]}."
            )
        d, p = self.hidden_size, self.num_parameters
        init = keras.initializers.RandomNormal(stddev=0.02)
        self.value_directions = self.add_weight(shape=(p, d), initializer=init, name="value_directions")
        self.parameter_embeddings = self.add_weight(shape=(p, d), initializer=init, name="parameter_embeddings")
        self.missing_embeddings = self.add_weight(shape=(p, d), initializer=init, name="missing_embeddings")
        self.pooled_in.build((None, 2 * p))
        self.pooled_mlp.build((None, d))
        self.token_mlp.build((None, None, d))

    def embed(self, params):
        params = ops.cast(params, self.compute_dtype)
        missing = ops.isnan(params)  # (B, P)
        values = ops.where(missing, ops.zeros_like(params), params)  # stays in the compute dtype (0.0 is float32)
        tokens = values[:, :, None] * self.value_directions[None] + self.parameter_embeddings[None]  # (B, P, D)
        tokens = ops.where(missing[:, :, None], self.missing_embeddings[None], tokens)
        tokens = tokens + self.token_mlp(tokens)
        pooled = self.pooled_in(ops.concatenate([values, ops.cast(missing, values.dtype)], axis=-1))  # (B, D)
        return pooled + self.pooled_mlp(ops.silu(pooled)), tokens

    def token_only_variables(self):
        return [self.value_directions, self.parameter_embeddings, self.missing_embeddings, *self.token_mlp.weights]

    def get_config(self):
        return {**super().get_config(), "num_parameters": self.num_parameters, "mlp_ratio": self.mlp_ratio,
                "parameter_names": self.parameter_names}

"""Expert-choice Mixture-of-Experts MLP (Zhou et al., 2022), as in MicroDiT / ReiMei.

Token-choice routing lets popular experts overflow; expert choice inverts it: every expert picks its own
top-``C`` tokens (by router score), so each expert processes exactly ``C`` tokens and the load is balanced by
construction. A token may be picked by several experts or by none (then only the shared experts see it).
Routing is per sample, so one sample's tokens never compete with another's.
"""

import math

import keras
from keras import ops

from keras_dit.layers.mlp import Mlp
from keras_dit.validation import check_int, check_positive


@keras.saving.register_keras_serializable(package="keras_dit")
class ExpertChoiceMoE(keras.layers.Layer):
    """(B, T, D) -> (B, T, D) through ``num_experts`` routed MLPs plus ``shared_experts`` always-on ones.

    Args:
        hidden_size: token width D.
        mlp_hidden_size: hidden width of each expert.
        num_experts: routed experts E (>= 1).
        capacity_factor: tokens per expert ``C = max(1, min(T, floor(T * capacity_factor / E)))``; 1.0 means on
            average one expert per token. Must be > 0.
        shared_experts: number of always-active experts (an MLP of width ``shared_experts * mlp_hidden_size``
            applied to every token); 0 for none.

    Call arguments:
        x: (B, T, D) tokens; T must be static. Returns (B, T, D).
    """

    def __init__(self, hidden_size, mlp_hidden_size, num_experts, capacity_factor=2.0, shared_experts=1, **kwargs):
        super().__init__(**kwargs)
        check_positive("capacity_factor", capacity_factor, hint="tokens per expert = tokens * it / num_experts")
        self.hidden_size = hidden_size
        self.mlp_hidden_size = mlp_hidden_size
        self.num_experts = check_int("num_experts", num_experts)
        self.capacity_factor = capacity_factor
        self.shared_experts = check_int("shared_experts", shared_experts, minimum=0)
        self.router = keras.layers.Dense(num_experts, use_bias=False, name="router")
        self.shared = (
            Mlp(hidden_size, shared_experts * mlp_hidden_size, name="shared") if shared_experts else None
        )

    def capacity(self, num_tokens):
        """Tokens each expert takes from a sequence of ``num_tokens``."""
        return max(1, min(num_tokens, math.floor(num_tokens * self.capacity_factor / self.num_experts)))

    def build(self, input_shape):
        e, d, h = self.num_experts, self.hidden_size, self.mlp_hidden_size
        limit = math.sqrt(6.0 / (d + h))  # xavier-uniform per expert
        init = keras.initializers.RandomUniform(-limit, limit)
        self.router.build((None, None, d))
        self.w1 = self.add_weight(shape=(e, d, h), initializer=init, name="w1")
        self.b1 = self.add_weight(shape=(e, h), initializer="zeros", name="b1")
        self.w2 = self.add_weight(shape=(e, h, d), initializer=init, name="w2")
        self.b2 = self.add_weight(shape=(e, d), initializer="zeros", name="b2")
        if self.shared is not None:
            self.shared.build((None, None, d))

    def route(self, x):
        """Router decisions: ``(gates (B, E, C), token indices (B, E, C))``, each expert's top-C tokens."""
        scores = ops.softmax(ops.cast(self.router(x), "float32"), axis=-1)  # (B, T, E), over experts
        gates, indices = ops.top_k(ops.transpose(scores, (0, 2, 1)), self.capacity(x.shape[1]))
        return ops.cast(gates, x.dtype), indices

    def call(self, x):
        gates, indices = self.route(x)
        dispatch = ops.one_hot(indices, x.shape[1], dtype=x.dtype)  # (B, E, C, T)
        expert_in = ops.einsum("bect,btd->becd", dispatch, x)
        hidden = ops.gelu(ops.einsum("becd,edh->bech", expert_in, self.w1) + self.b1[None, :, None], approximate=True)
        expert_out = ops.einsum("bech,ehd->becd", hidden, self.w2) + self.b2[None, :, None]
        out = ops.einsum("bect,becd->btd", dispatch, expert_out * gates[..., None])  # (B, T, D)
        if self.shared is not None:
            out = out + self.shared(x)
        return out

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "hidden_size": self.hidden_size,
            "mlp_hidden_size": self.mlp_hidden_size,
            "num_experts": self.num_experts,
            "capacity_factor": self.capacity_factor,
            "shared_experts": self.shared_experts,
        }

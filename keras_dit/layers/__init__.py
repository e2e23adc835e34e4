"""Building blocks shared by the backbones."""

from keras_dit.layers.attention import SelfAttention, dot_product_attention
from keras_dit.layers.dit_block import DiTBlock, FinalLayer, token_norm
from keras_dit.layers.mlp import Mlp, SwiGLU, feed_forward
from keras_dit.layers.modulation import AdaLNModulation, gated_residual, modulate
from keras_dit.layers.patch_embedding import PatchEmbedding, patchify, unpatchify
from keras_dit.layers.position_embedding import SinCosPositionEmbedding, sincos_2d
from keras_dit.layers.timestep_embedding import TimestepEmbedding, sinusoidal_embedding
from keras_dit.layers.learned_position_embedding import LearnedPositionEmbedding
from keras_dit.layers.mmdit_block import AttentionProjections, MMDiTBlock
from keras_dit.layers.moe import ExpertChoiceMoE
from keras_dit.layers.rope import apply_rope, apply_rope_to_tail, grid_positions, rope_tables
from keras_dit.layers.remat import remat_call, remat_scope
from keras_dit.layers.transformer_block import TransformerBlock

"""MMDiTBlock: shapes, adaLN-Zero identity at init, joint attention mixes streams, sharing, bad widths."""

import numpy as np
import pytest

from keras_dit.layers.mmdit_block import AttentionProjections, MMDiTBlock
from keras_dit.layers.modulation import AdaLNModulation
from keras_dit.layers.rope import grid_positions, rope_tables
from tests.helpers import assert_close, max_abs_diff, to_numpy

RNG = np.random.default_rng(0)
IMAGE = RNG.standard_normal((2, 4, 16)).astype("float32")
COND = RNG.standard_normal((2, 3, 16)).astype("float32")
C = RNG.standard_normal((2, 16)).astype("float32")
COS, SIN = rope_tables(grid_positions(2, 2), 8)


def randomize_modulation(block):
    kernel = block.modulation.dense.kernel
    kernel.assign(np.random.default_rng(1).normal(0, 0.2, tuple(kernel.shape)).astype("float32"))


def test_double_stream_is_identity_at_init_then_mixes_streams():
    block = MMDiTBlock(16, 2, 32, double_stream=True, num_experts=2, capacity_factor=1.0)
    image, cond = block(IMAGE, COND, C, COS, SIN)
    assert_close(image, IMAGE, what="image at init (adaLN-Zero)")
    assert_close(cond, COND, what="cond at init (adaLN-Zero)")
    randomize_modulation(block)
    image, cond = (to_numpy(a) for a in block(IMAGE, COND, C, COS, SIN))
    assert image.shape == IMAGE.shape and cond.shape == COND.shape
    other_image, _ = block(IMAGE, COND[:, ::-1] + RNG.standard_normal(COND.shape).astype("float32"), C, COS, SIN)
    assert max_abs_diff(other_image, image) > 1e-4, "image tokens must attend to the condition tokens"


def test_single_stream_with_and_without_condition_tokens():
    block = MMDiTBlock(16, 2, 32, double_stream=False)
    block(IMAGE, COND, C, COS, SIN)
    randomize_modulation(block)
    image, cond = block(IMAGE, COND, C, COS, SIN)
    assert tuple(image.shape) == IMAGE.shape and tuple(cond.shape) == COND.shape
    alone = block(IMAGE, None, C, COS, SIN)
    assert tuple(alone.shape) == IMAGE.shape
    assert max_abs_diff(alone, image) > 1e-4


def test_shared_modulation_and_attention():
    attention = (AttentionProjections(16, 2, name="shared_image"), AttentionProjections(16, 2, name="shared_cond"))
    shared = AdaLNModulation(16, 12)
    blocks = [MMDiTBlock(16, 2, 32, shared_modulation=True, attention=attention, name=f"b{i}") for i in range(2)]
    mods = shared(C)
    for block in blocks:
        block(IMAGE, COND, C, COS, SIN, mods)
    assert blocks[0].image_attn is blocks[1].image_attn
    assert blocks[0].modulation is None and tuple(blocks[0].modulation_offset.shape) == (12, 16)
    with pytest.raises(ValueError, match="pass shared_mods"):
        blocks[0](IMAGE, COND, C, COS, SIN)


def test_num_heads_must_divide_the_width():
    with pytest.raises(ValueError, match="hidden_size=16 is not divisible by num_heads=3"):
        MMDiTBlock(16, 3, 32)

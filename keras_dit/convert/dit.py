"""Converters into ``DiT``: from diffusers' ``DiTTransformer2DModel`` and from the reference checkpoints.

Both sources compute the same network except in two details, which become ``DiT`` options:
- timestep frequencies: the reference divides the exponent by ``half``, diffusers by ``half - 1``
  (``timestep_frequency_shift`` 0 vs 1);
- LayerNorm epsilon of the MLP branch: 1e-6 in the reference, diffusers' ``norm_eps`` (1e-5) there
  (``mlp_norm_eps``).
diffusers also keeps a copy of the timestep/label embedder in every block; real checkpoints hold equal copies,
which the converter checks before using the first.
"""

import numpy as np

from keras_dit.convert.diffusers import register
from keras_dit.convert.state_dict import StateDictLoader, dense, load_state_dict, to_numpy_dict
from keras_dit.layers.position_embedding import sincos_2d
from keras_dit.models.dit import DiT


def _check_fixed_positions(table, model, source):
    """``DiT`` rebuilds the fixed 2-D sin-cos position table; a checkpoint whose ``pos_embed`` is another table (a
    learned one) would convert to a different network, so it is refused."""
    if table is None:
        return
    table = np.asarray(table, dtype=np.float32)
    grid = model.input_size // model.patch_size
    expected = sincos_2d(model.hidden_size, grid, grid)[None]
    if table.size != expected.size:
        raise ValueError(f"The {source}'s pos_embed has shape {table.shape}, this DiT's position table "
                         f"{expected.shape}; pass the input_size / preset the checkpoint was trained with.")
    difference = float(np.abs(table.reshape(expected.shape) - expected).max())
    if difference > 1e-4:
        raise ValueError(
            f"The {source}'s pos_embed differs from the fixed 2-D sin-cos table by up to {difference:.3g}: it was "
            "learned or changed, and DiT uses the fixed table, so the converted model would compute something "
            "else. Only checkpoints with the reference's fixed (requires_grad=False) pos_embed convert."
        )


def _patch_kernel(w):
    """torch conv weight (D, C, p, p) -> our patch Dense kernel (p * p * C, D), patches flattened (row, col, C)."""
    return np.transpose(w, (2, 3, 1, 0)).reshape(-1, w.shape[0])


def _plan_common(loader, model, names):
    """Plan every weight; ``names`` maps our parts to the source's key prefixes."""
    loader.assign(model.get_layer("patch_embedding").projection.kernel, f"{names['patch']}.weight", _patch_kernel)
    loader.assign(model.get_layer("patch_embedding").projection.bias, f"{names['patch']}.bias")
    t_emb = model.get_layer("timestep_embedding")
    dense(loader, t_emb.dense_in, names["t_in"])
    dense(loader, t_emb.dense_out, names["t_out"])
    if model.conditioner is not None:  # the converters build label-conditional DiTs: a ClassConditioner's table
        loader.assign(model.conditioner.embedding.embeddings, names["labels"])
    for i in range(model.depth):
        block = model.get_layer(f"block_{i}")
        prefix = names["block"](i)
        dense(loader, block.modulation.dense, prefix["modulation"])
        dense(loader, block.attn.proj, prefix["proj"])
        dense(loader, block.mlp.fc1, prefix["fc1"])
        dense(loader, block.mlp.fc2, prefix["fc2"])
        yield block, prefix
    final = model.get_layer("final_layer")
    dense(loader, final.modulation.dense, names["final_modulation"])
    dense(loader, final.linear, names["final_linear"])


def from_dit_checkpoint(state_dict_or_path, preset="DiT-XL/2", **overrides):
    """A ``DiT`` holding the weights of a reference (facebookresearch/DiT) checkpoint.

    Args:
        state_dict_or_path: a state dict, or a file (``.pt`` as ``train.py`` writes it, whose ``"ema"``
            weights are used when present, ``.safetensors`` or ``.npz``).
        preset: the architecture, e.g. ``"DiT-XL/2"``; ``overrides`` change preset arguments (``input_size``
            for 512 px models, ``num_classes``, ``learn_sigma`` ...).
    """
    state = state_dict_or_path
    if not isinstance(state, dict):
        state = load_state_dict(state)
    if "ema" in state and isinstance(state["ema"], dict):
        state = state["ema"]
    elif "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    model = DiT.from_preset(preset, **overrides)
    loader = StateDictLoader(state, source="reference DiT checkpoint")
    names = {
        "patch": "x_embedder.proj",
        "t_in": "t_embedder.mlp.0",
        "t_out": "t_embedder.mlp.2",
        "labels": "y_embedder.embedding_table.weight",
        "block": lambda i: {
            "modulation": f"blocks.{i}.adaLN_modulation.1",
            "proj": f"blocks.{i}.attn.proj",
            "fc1": f"blocks.{i}.mlp.fc1",
            "fc2": f"blocks.{i}.mlp.fc2",
            "qkv": f"blocks.{i}.attn.qkv",
        },
        "final_modulation": "final_layer.adaLN_modulation.1",
        "final_linear": "final_layer.linear",
    }
    for block, prefix in _plan_common(loader, model, names):
        dense(loader, block.attn.qkv, prefix["qkv"])
    loader.apply(ignore=("pos_embed",))  # the fixed sin-cos table is rebuilt, not loaded ...
    _check_fixed_positions(state.get("pos_embed"), model, "reference DiT checkpoint")  # ... if it is that table
    return model


@register("DiTTransformer2DModel")
def from_diffusers_dit(module):
    """A ``DiT`` equal to diffusers' ``DiTTransformer2DModel`` ``module`` (random or pretrained weights)."""
    cfg = module.config
    in_channels = cfg.in_channels
    out_channels = cfg.out_channels or in_channels
    if out_channels not in (in_channels, 2 * in_channels):
        raise ValueError(
            f"out_channels={out_channels} with in_channels={in_channels}: DiT predicts in_channels "
            "(learn_sigma=False) or 2 * in_channels (learn_sigma=True) channels."
        )
    state = to_numpy_dict(module.state_dict())
    table = state["transformer_blocks.0.norm1.emb.class_embedder.embedding_table.weight"]
    hidden = cfg.num_attention_heads * cfg.attention_head_dim
    fc1 = state["transformer_blocks.0.ff.net.0.proj.weight"]
    model = DiT(
        input_size=cfg.sample_size,
        patch_size=cfg.patch_size,
        in_channels=in_channels,
        hidden_size=hidden,
        depth=cfg.num_layers,
        num_heads=cfg.num_attention_heads,
        mlp_ratio=fc1.shape[0] / hidden,
        learn_sigma=out_channels == 2 * in_channels,
        num_classes=cfg.num_embeds_ada_norm,
        class_dropout_prob=0.1 if table.shape[0] > cfg.num_embeds_ada_norm else 0.0,
        timestep_frequency_shift=1,
        mlp_norm_eps=cfg.norm_eps,
    )
    _check_shared_embedders(state, cfg.num_layers)
    loader = StateDictLoader(_fuse_qkv(state, cfg.num_layers), source="diffusers DiTTransformer2DModel")
    emb = "transformer_blocks.0.norm1.emb"
    names = {
        "patch": "pos_embed.proj",
        "t_in": f"{emb}.timestep_embedder.linear_1",
        "t_out": f"{emb}.timestep_embedder.linear_2",
        "labels": f"{emb}.class_embedder.embedding_table.weight",
        "block": lambda i: {
            "modulation": f"transformer_blocks.{i}.norm1.linear",
            "proj": f"transformer_blocks.{i}.attn1.to_out.0",
            "fc1": f"transformer_blocks.{i}.ff.net.0.proj",
            "fc2": f"transformer_blocks.{i}.ff.net.2",
            "attn": f"transformer_blocks.{i}.attn1",
        },
        "final_modulation": "proj_out_1",
        "final_linear": "proj_out_2",
    }
    for block, prefix in _plan_common(loader, model, names):
        dense(loader, block.attn.qkv, f"{prefix['attn']}.qkv")
    loader.apply(ignore=tuple(f"transformer_blocks.{i}.norm1.emb." for i in range(1, cfg.num_layers)))
    return model


def _fuse_qkv(state, num_layers):
    """diffusers' separate to_q / to_k / to_v projections -> one ``attn1.qkv`` (rows q, then k, then v)."""
    state = dict(state)
    for i in range(num_layers):
        attn = f"transformer_blocks.{i}.attn1"
        for part in ("weight", "bias"):
            tensors = [state.pop(f"{attn}.to_{k}.{part}", None) for k in "qkv"]
            if all(t is not None for t in tensors):
                state[f"{attn}.qkv.{part}"] = np.concatenate([np.asarray(t) for t in tensors], axis=0)
    return state


def _check_shared_embedders(state, num_layers):
    """diffusers stores the timestep/label embedder once per block; they must be equal to be one embedder."""
    first = "transformer_blocks.0.norm1.emb."
    for i in range(1, num_layers):
        prefix = f"transformer_blocks.{i}.norm1.emb."
        for key, value in state.items():
            if key.startswith(first):
                other = state.get(prefix + key[len(first):])
                if other is None or not np.array_equal(other, value):
                    raise ValueError(
                        f"diffusers block {i} has a timestep/label embedder different from block 0 "
                        f"({prefix + key[len(first):]}); DiT shares one embedder across blocks, so this model "
                        "cannot be converted exactly. Real DiT checkpoints hold equal copies; tie them first."
                    )

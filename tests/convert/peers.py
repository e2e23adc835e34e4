"""PyTorch peers of the converters' tests: random diffusers models, their inputs and outputs in our layout, and
the reference DiT checkpoint layout. Imported by tests/convert and tests/cli/test_convert_cli.py."""

import numpy as np

import keras_dit as kd
from tests.helpers import nchw_to_nhwc, nhwc_to_nchw, to_torch, torch_no_grad


def random_diffusers_dit(config):
    """A diffusers DiT with random weights everywhere (adaLN and output too), embedders tied across blocks."""
    import diffusers
    import torch

    torch.manual_seed(0)
    peer = diffusers.DiTTransformer2DModel(**config).eval()
    with torch.no_grad():
        for param in peer.parameters():
            param.normal_(0.0, 0.1)
        first = peer.transformer_blocks[0].norm1.emb
        for block in peer.transformer_blocks[1:]:
            block.norm1.emb.load_state_dict(first.state_dict())
    return peer


def peer_inputs(config, batch=3):
    rng = np.random.default_rng(0)
    size, channels = config["sample_size"], config["in_channels"]
    x = rng.standard_normal((batch, size, size, channels)).astype("float32")
    t = np.array([0.0, 17.0, 999.0][:batch], dtype="float32")
    labels = rng.integers(0, config["num_embeds_ada_norm"] + 1, size=batch).astype("int32")
    labels[-1] = config["num_embeds_ada_norm"]  # the null class
    return x, t, labels


def peer_forward(peer, x, t, labels):
    with torch_no_grad():
        out = peer(to_torch(nhwc_to_nchw(x)), timestep=to_torch(t), class_labels=to_torch(labels).long()).sample
    return nchw_to_nhwc(out)


def to_reference_layout(peer):
    """Rename a diffusers DiT state dict to the reference repo's keys (the layout of its released .pt files)."""
    sd = {k: v.detach().numpy() for k, v in peer.state_dict().items()}
    emb = "transformer_blocks.0.norm1.emb"
    grid = peer.config.sample_size // peer.config.patch_size
    ref = {
        "x_embedder.proj.weight": sd["pos_embed.proj.weight"],
        "x_embedder.proj.bias": sd["pos_embed.proj.bias"],
        "t_embedder.mlp.0.weight": sd[f"{emb}.timestep_embedder.linear_1.weight"],
        "t_embedder.mlp.0.bias": sd[f"{emb}.timestep_embedder.linear_1.bias"],
        "t_embedder.mlp.2.weight": sd[f"{emb}.timestep_embedder.linear_2.weight"],
        "t_embedder.mlp.2.bias": sd[f"{emb}.timestep_embedder.linear_2.bias"],
        "y_embedder.embedding_table.weight": sd[f"{emb}.class_embedder.embedding_table.weight"],
        "final_layer.adaLN_modulation.1.weight": sd["proj_out_1.weight"],
        "final_layer.adaLN_modulation.1.bias": sd["proj_out_1.bias"],
        "final_layer.linear.weight": sd["proj_out_2.weight"],
        "final_layer.linear.bias": sd["proj_out_2.bias"],
        "pos_embed": kd.layers.sincos_2d(peer.config.num_attention_heads * peer.config.attention_head_dim,
                                         grid, grid)[None],  # the reference's fixed table
    }
    for i in range(peer.config.num_layers):
        src, dst = f"transformer_blocks.{i}", f"blocks.{i}"
        for part in ("weight", "bias"):
            ref[f"{dst}.attn.qkv.{part}"] = np.concatenate([sd[f"{src}.attn1.to_{k}.{part}"] for k in "qkv"])
            ref[f"{dst}.attn.proj.{part}"] = sd[f"{src}.attn1.to_out.0.{part}"]
            ref[f"{dst}.mlp.fc1.{part}"] = sd[f"{src}.ff.net.0.proj.{part}"]
            ref[f"{dst}.mlp.fc2.{part}"] = sd[f"{src}.ff.net.2.{part}"]
            ref[f"{dst}.adaLN_modulation.1.{part}"] = sd[f"{src}.norm1.linear.{part}"]
    return ref


def random_autoencoder(config):
    """An AutoencoderKL whose every parameter (norms included) is randomised, so each one is tested."""
    import diffusers
    import torch

    torch.manual_seed(0)
    peer = diffusers.AutoencoderKL(**config).eval()
    with torch.no_grad():
        for param in peer.parameters():
            param.add_(0.1 * torch.randn_like(param))
    return peer


def images_for(config, size=16, batch=2):
    rng = np.random.default_rng(0)
    return rng.uniform(-1, 1, (batch, size, size, config.get("in_channels", 3))).astype("float32")


def peer_outputs(peer, images):
    with torch_no_grad():
        dist = peer.encode(to_torch(nhwc_to_nchw(images))).latent_dist
        decoded = peer.decode(dist.mean).sample
    return nchw_to_nhwc(dist.mean), nchw_to_nhwc(dist.logvar), nchw_to_nhwc(decoded)

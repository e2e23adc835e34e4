"""``keras-dit convert``: diffusers folders (DiT, AutoencoderKL) and reference DiT checkpoints into ``.keras``
files whose outputs match the PyTorch models, and the one-line errors of bad sources."""

import argparse

import keras
import pytest

import keras_dit as kd
from keras_dit.cli.main import run
from tests.convert.peers import images_for, peer_forward, peer_inputs, peer_outputs, random_autoencoder
from tests.convert.peers import random_diffusers_dit, to_reference_layout
from tests.helpers import assert_close, max_abs_diff, run_error

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

TINY_DIT = dict(num_attention_heads=2, attention_head_dim=16, in_channels=4, out_channels=8, num_layers=2,
                sample_size=8, patch_size=2, num_embeds_ada_norm=10)
TINY_VAE = dict(block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
                up_block_types=("UpDecoderBlock2D",) * 2, layers_per_block=1, latent_channels=4, norm_num_groups=4)


def convert(tmp_path, source, *extra):
    output = str(tmp_path / "converted.keras")
    assert run(["convert", "-c", "convert", "--set", f"convert.source={source}", "--set",
                f"convert.output={output}", *extra]) == output
    return keras.saving.load_model(output)


def test_diffusers_dit_folder(tmp_path):
    peer = random_diffusers_dit(TINY_DIT)
    peer.save_pretrained(tmp_path / "dit")
    model = convert(tmp_path, tmp_path / "dit")
    assert isinstance(model, kd.models.DiT)
    x, t, labels = peer_inputs(TINY_DIT)
    ours, expected = model({"x": x, "t": t, "condition": labels}), peer_forward(peer, x, t, labels)
    print(f"convert diffusers DiT: max abs diff {max_abs_diff(ours, expected):.2e}")
    assert_close(ours, expected, atol=1e-4, what="converted .keras DiT vs diffusers")


def test_diffusers_autoencoder_folder(tmp_path):
    peer = random_autoencoder(TINY_VAE)
    peer.save_pretrained(tmp_path / "vae")
    vae = convert(tmp_path, tmp_path / "vae")
    assert isinstance(vae, kd.models.KLVAE) and vae.scale_factor == pytest.approx(peer.config.scaling_factor)
    images = images_for(TINY_VAE)
    mean, logvar, decoded = peer_outputs(peer, images)
    posterior = vae.encode(images)
    print(f"convert diffusers AutoencoderKL: mean {max_abs_diff(posterior.mean, mean):.2e}, decoded "
          f"{max_abs_diff(vae.decode(mean), decoded):.2e}")
    assert_close(posterior.mean, mean, atol=1e-4, what="posterior mean")
    assert_close(posterior.logvar, logvar, atol=1e-4, what="posterior logvar")
    assert_close(vae.decode(mean), decoded, atol=1e-4, what="decoded images")


def reference_dit_peer():
    """A diffusers DiT with DiT-S/2's architecture computing exactly what the reference DiT computes: its MLP
    LayerNorm epsilon (1e-6) and timestep frequencies (no shift), the two places the implementations differ."""
    peer = random_diffusers_dit(dict(num_attention_heads=6, attention_head_dim=64, in_channels=4, out_channels=8,
                                     num_layers=12, sample_size=4, patch_size=2, num_embeds_ada_norm=1000,
                                     norm_eps=1e-6))
    with torch.no_grad():
        for param in peer.parameters():
            param.mul_(0.3)  # weights of std 0.03: 12 blocks of width 384 keep outputs of order 1 (float32 parity)
    for block in peer.transformer_blocks:
        block.norm1.emb.time_proj.downscale_freq_shift = 0
    return peer


def test_reference_dit_checkpoint(tmp_path):
    peer = reference_dit_peer()
    reference = {key: torch.from_numpy(value) for key, value in to_reference_layout(peer).items()}
    path = tmp_path / "0010000.pt"
    torch.save({"model": reference, "ema": reference}, path)  # as the reference train.py writes them
    model = convert(tmp_path, path, "--set", "convert.format=dit", "--set", "convert.preset=DiT-S/2",
                    "--set", "convert.input_size=4")
    assert isinstance(model, kd.models.DiT) and model.input_size == 4
    x, t, labels = peer_inputs(dict(sample_size=4, in_channels=4, num_embeds_ada_norm=1000))
    ours, expected = model({"x": x, "t": t, "condition": labels}), peer_forward(peer, x, t, labels)
    print(f"convert reference DiT-S/2: max abs diff {max_abs_diff(ours, expected):.2e}")
    assert_close(ours, expected, atol=1e-4, what="converted reference checkpoint vs its PyTorch network")


def test_bad_sources(tmp_path, capsys):
    line = run_error(capsys, ["convert", "--set", f"convert.source={tmp_path}/missing.pt",
                              "--set", f"convert.output={tmp_path}/out.keras"])
    assert "missing.pt" in line and "does not exist" in line
    line = run_error(capsys, ["convert", "--set", f"convert.source={tmp_path}"])
    assert "convert.output" in line
    line = run_error(capsys, ["convert", "--set", f"convert.source={tmp_path}",
                              "--set", f"convert.output={tmp_path}/out.keras"])
    assert "no config.json" in line
    small = {key: torch.from_numpy(value) for key, value in to_reference_layout(random_diffusers_dit(TINY_DIT)).items()}
    torch.save(small, tmp_path / "small.pt")
    dit = ["convert", "--set", "convert.format=dit", "--set", "convert.preset=DiT-S/2",
           "--set", f"convert.output={tmp_path}/out.keras"]
    line = run_error(capsys, [*dit, "--set", f"convert.source={tmp_path}/small.pt"])
    assert "does not match the model" in line and "wrong shapes" in line  # a DiT-S/2 checkpoint it is not
    torch.save({"ema": small, "args": argparse.Namespace(model="DiT-S/2")}, tmp_path / "with_args.pt")
    line = run_error(capsys, [*dit, "--set", f"convert.source={tmp_path}/with_args.pt"])
    assert "holds Python objects besides weights" in line and "weights_only=False" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.pt", "with_args.pt"], "no output on failure"

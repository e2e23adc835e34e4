"""DiT parity with diffusers' DiTTransformer2DModel and the reference checkpoint layout."""

import numpy as np
import pytest

import keras_dit as kd
from tests.convert.peers import peer_forward, peer_inputs, random_diffusers_dit, to_reference_layout
from tests.helpers import assert_close, to_numpy

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

CONFIGS = {
    "patch2-sigma": dict(num_attention_heads=2, attention_head_dim=16, in_channels=4, out_channels=8,
                         num_layers=2, sample_size=8, patch_size=2, num_embeds_ada_norm=10),
    "patch4-nosigma": dict(num_attention_heads=4, attention_head_dim=8, in_channels=3, out_channels=3,
                           num_layers=3, sample_size=16, patch_size=4, num_embeds_ada_norm=5),
    "patch2-1head": dict(num_attention_heads=1, attention_head_dim=24, in_channels=4, out_channels=4,
                         num_layers=1, sample_size=8, patch_size=2, num_embeds_ada_norm=3),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_from_diffusers_matches_peer(name):
    config = CONFIGS[name]
    peer = random_diffusers_dit(config)
    model = kd.convert.from_diffusers(peer)
    x, t, labels = peer_inputs(config)
    ours = model({"x": x, "t": t, "condition": labels})
    assert_close(ours, peer_forward(peer, x, t, labels), atol=1e-4, what=f"DiT vs diffusers ({name})")


def test_from_diffusers_directory(tmp_path):
    config = CONFIGS["patch2-sigma"]
    peer = random_diffusers_dit(config)
    peer.save_pretrained(tmp_path)
    model = kd.convert.from_diffusers(str(tmp_path))
    x, t, labels = peer_inputs(config)
    assert_close(model({"x": x, "t": t, "condition": labels}), peer_forward(peer, x, t, labels), atol=1e-4)


def test_untied_diffusers_embedders_are_refused():
    peer = random_diffusers_dit(CONFIGS["patch2-sigma"])
    with torch.no_grad():
        peer.transformer_blocks[1].norm1.emb.timestep_embedder.linear_1.bias.add_(1.0)
    with pytest.raises(ValueError, match="block 1 has a timestep/label embedder different"):
        kd.convert.from_diffusers(peer)


def reference_overrides(config):
    return dict(input_size=config["sample_size"], patch_size=config["patch_size"],
                in_channels=config["in_channels"], hidden_size=32, depth=config["num_layers"],
                num_heads=config["num_attention_heads"], num_classes=config["num_embeds_ada_norm"],
                learn_sigma=True)


def test_from_dit_checkpoint_reference_layout(tmp_path):
    """The reference layout loads (from a dict and from a train.py-style .pt with "ema") and matches the
    network it came from once the two documented differences are set to the diffusers values."""
    config = CONFIGS["patch2-sigma"]
    peer = random_diffusers_dit(config)
    ref = to_reference_layout(peer)
    x, t, labels = peer_inputs(config)
    expected = peer_forward(peer, x, t, labels)
    overrides = dict(reference_overrides(config), timestep_frequency_shift=1, mlp_norm_eps=1e-5)
    model = kd.convert.from_dit_checkpoint(ref, "DiT-S/2", **overrides)
    assert_close(model({"x": x, "t": t, "condition": labels}), expected, atol=1e-4)

    path = tmp_path / "0001000.pt"
    torch.save({"model": {k: torch.zeros(1) for k in ref}, "ema": {k: torch.from_numpy(v) for k, v in ref.items()}},
               path)
    loaded = kd.convert.from_dit_checkpoint(path, "DiT-S/2", **overrides)
    assert_close(loaded({"x": x, "t": t, "condition": labels}), expected, atol=1e-4)


def test_a_learned_pos_embed_is_refused():
    """Before: a checkpoint whose pos_embed was not the fixed table converted silently to another network."""
    config = CONFIGS["patch2-sigma"]
    ref = to_reference_layout(random_diffusers_dit(config))
    ref["pos_embed"] = ref["pos_embed"] + np.random.default_rng(0).normal(0, 0.5, ref["pos_embed"].shape)
    with pytest.raises(ValueError, match="pos_embed differs from the fixed 2-D sin-cos table"):
        kd.convert.from_dit_checkpoint(ref, "DiT-S/2", **reference_overrides(config))


def test_reference_defaults_differ_from_diffusers_as_documented():
    """With the reference's own settings (shift 0, eps 1e-6) outputs move: both options are real."""
    config = CONFIGS["patch2-sigma"]
    peer = random_diffusers_dit(config)
    model = kd.convert.from_dit_checkpoint(to_reference_layout(peer), "DiT-S/2", **reference_overrides(config))
    x, t, labels = peer_inputs(config)
    diff = np.abs(to_numpy(model({"x": x, "t": t, "condition": labels})) - peer_forward(peer, x, t, labels))
    assert diff.max() > 1e-3


def test_checkpoint_with_missing_and_misshapen_keys_names_them():
    config = CONFIGS["patch2-sigma"]
    ref = to_reference_layout(random_diffusers_dit(config))
    del ref["blocks.1.mlp.fc2.bias"]
    ref["final_layer.linear.weight"] = ref["final_layer.linear.weight"][:5]
    ref["x_embedder.proj.weight"] = ref["x_embedder.proj.weight"][..., 0]  # wrong rank: its transpose fails
    with pytest.raises(ValueError) as info:
        kd.convert.from_dit_checkpoint(ref, "DiT-S/2", **reference_overrides(config))
    message = str(info.value)
    assert "missing keys: blocks.1.mlp.fc2.bias" in message
    assert "final_layer.linear.weight" in message and "wrong shapes" in message
    assert "x_embedder.proj.weight" in message


def test_failed_conversion_leaves_no_partial_weights():
    """All-or-nothing: a state dict with one bad key assigns nothing."""
    config = CONFIGS["patch2-sigma"]
    ref = to_reference_layout(random_diffusers_dit(config))
    ref["blocks.1.mlp.fc2.bias"] = np.zeros(3, "float32")
    model = kd.models.DiT.from_preset("DiT-S/2", **reference_overrides(config))
    before = [np.array(w) for w in model.get_weights()]
    loader = kd.convert.StateDictLoader(ref)
    loader.assign(model.get_layer("final_layer").linear.bias, "final_layer.linear.bias")
    loader.assign(model.get_layer("block_1").mlp.fc2.bias, "blocks.1.mlp.fc2.bias")
    with pytest.raises(ValueError, match="wrong shapes"):
        loader.apply(ignore=("",))
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_missing_checkpoint_file():
    with pytest.raises(FileNotFoundError, match="No checkpoint file"):
        kd.convert.from_dit_checkpoint("/nonexistent/DiT-XL-2-256x256.pt")


def test_converted_model_survives_keras_round_trip(tmp_path):
    import keras

    config = CONFIGS["patch4-nosigma"]
    model = kd.convert.from_diffusers(random_diffusers_dit(config))
    x, t, labels = peer_inputs(config)
    model.save(tmp_path / "converted.keras")
    loaded = keras.saving.load_model(tmp_path / "converted.keras")
    inputs = {"x": x, "t": t, "condition": labels}
    assert_close(loaded(inputs), model(inputs), atol=1e-6)

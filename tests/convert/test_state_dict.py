"""State-dict loading: the file formats, torch tensors to NumPy, and StateDictLoader's all-or-nothing plan on a
tiny torch module (outputs equal after loading; missing, misshapen and unexpected keys named, nothing assigned)."""

import keras
import numpy as np
import pytest

from keras_dit.convert.state_dict import StateDictLoader, dense, load_state_dict, to_numpy_dict
from tests.helpers import assert_close, to_numpy, torch_no_grad, to_torch

torch = pytest.importorskip("torch")


def peer():
    """A torch MLP and a Keras one of the same shapes (Keras weights untouched: zeros)."""
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2, bias=False))
    layers = [keras.layers.Dense(4, kernel_initializer="zeros"), keras.layers.Dense(2, use_bias=False)]
    layers[0].build((None, 3))
    layers[1].build((None, 4))
    return module, layers


def plan(module, layers, source="state dict"):
    loader = StateDictLoader(module.state_dict(), source)
    dense(loader, layers[0], "0")
    dense(loader, layers[1], "2")
    return loader


def test_loaded_layers_reproduce_the_module():
    module, layers = peer()
    plan(module, layers).apply()
    x = np.random.default_rng(0).standard_normal((5, 3)).astype("float32")
    with torch_no_grad():
        expected = module(to_torch(x))
    assert_close(layers[1](keras.ops.tanh(layers[0](x))), expected, atol=1e-6, what="Keras vs torch")


def test_a_bad_plan_names_the_keys_and_assigns_nothing():
    module, layers = peer()
    state = module.state_dict()
    for change, match in [
        (lambda s: s.pop("0.bias"), "missing keys: 0.bias"),
        (lambda s: s.update({"2.weight": torch.zeros(2, 5)}), r"2.weight: \(5, 2\) \(after layout .* \(4, 2\)"),
        (lambda s: s.update({"3.weight": torch.zeros(1)}), "unexpected keys: 3.weight"),
    ]:
        bad = dict(state)
        change(bad)
        loader = StateDictLoader(bad, "tiny checkpoint")
        dense(loader, layers[0], "0")
        dense(loader, layers[1], "2")
        with pytest.raises(ValueError, match=f"The tiny checkpoint does not match the model .*{match}"):
            loader.apply()
        assert np.all(to_numpy(layers[0].kernel) == 0.0), "a failed load must not assign anything"
    loader = StateDictLoader({**state, "extra.num_batches": torch.zeros(1)})
    dense(loader, layers[0], "0")
    dense(loader, layers[1], "2")
    loader.apply(ignore=("extra.",))  # ignored prefixes are not unexpected


def test_file_formats_and_tensor_conversion(tmp_path):
    state = {"w": torch.arange(6, dtype=torch.float16).reshape(2, 3), "n": torch.tensor([3], dtype=torch.int64)}
    arrays = to_numpy_dict(state)
    assert arrays["w"].dtype == np.float32 and arrays["n"].dtype == np.int64
    torch.save(state, tmp_path / "m.pt")
    np.savez(tmp_path / "m.npz", **arrays)
    from safetensors.numpy import save_file

    save_file(arrays, str(tmp_path / "m.safetensors"))
    for name in ("m.pt", "m.npz", "m.safetensors"):
        loaded = to_numpy_dict(load_state_dict(tmp_path / name))
        assert sorted(loaded) == ["n", "w"], name
        np.testing.assert_array_equal(loaded["w"], arrays["w"])
    with pytest.raises(FileNotFoundError, match="No checkpoint file at .*missing.pt"):
        load_state_dict(tmp_path / "missing.pt")

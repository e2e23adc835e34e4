import numpy as np
import pytest

from keras_dit.data import annotations


def test_parse_tags_strips_and_dedupes():
    assert annotations.parse_tags(" 1girl, smile ,,hat\nsmile, blue sky ") == ["1girl", "smile", "hat", "blue sky"]


def test_tags_csv_quoted_unquoted_and_header(tmp_path):
    path = tmp_path / "tags.csv"
    path.write_text('file,tags\na.png,"smile, hat"\nsub/b.jpg,cat,dog\n\n')
    assert annotations.read_tags_csv(path) == {"a.png": ["smile", "hat"], "sub/b.jpg": ["cat", "dog"]}


def test_params_csv_with_header(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("file,size,angle\na.png,1.5,-2\nb.png,0,3\n")
    files, params, names = annotations.read_params(path)
    assert files == ["a.png", "b.png"] and names == ["size", "angle"]
    np.testing.assert_array_equal(params, np.array([[1.5, -2], [0, 3]], np.float32))


def test_params_of_inconsistent_length_are_an_error(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("a.png,1,2,3\nb.png,1,2\n")
    with pytest.raises(ValueError, match=r"line 2.*2 values.*expected 3"):
        annotations.read_params(path)


def test_non_numeric_params_are_an_error(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("a.png,1,x\n")
    with pytest.raises(ValueError, match="non-numeric"):
        annotations.read_params(path)


def test_params_npz(tmp_path):
    path = tmp_path / "p.npz"
    np.savez(path, files=np.array(["a.png", "b.png"]), params=np.ones((2, 5)))
    files, params, _ = annotations.read_params(path)
    assert files == ["a.png", "b.png"] and params.shape == (2, 5) and params.dtype == np.float32
    np.savez(path, files=np.array(["a.png", "b.png"]), params=np.ones((3, 5)))
    with pytest.raises(ValueError, match="N = 2"):
        annotations.read_params(path)
    with pytest.raises(FileNotFoundError):
        annotations.read_params(tmp_path / "missing.npz")


def test_vocabulary_from_data_file_and_multi_hot(tmp_path):
    vocabulary = annotations.build_tag_vocabulary([["b", "a"], ["a", "c"], ["a", "b"]], min_count=2)
    assert vocabulary == ["a", "b"]  # most frequent first; "c" is used once
    path = tmp_path / "vocab.txt"
    path.write_text("x\ny\n\n")
    assert annotations.read_tag_vocabulary(path) == ["x", "y"]
    with pytest.raises(ValueError, match="repeats"):
        annotations.read_tag_vocabulary(["x", "x"])
    np.testing.assert_array_equal(annotations.multi_hot([["b", "zzz"], []], ["a", "b"]), [[0, 1], [0, 0]])

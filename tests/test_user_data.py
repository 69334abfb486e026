"""--dataset npz:PATH and --dataset tfds:NAME: a user's own data, validated like the IDX files (each
problem one paragraph, exit 2, nothing written), kept in its shape, scaled like the IDX files, and
fingerprinted over its whole content."""
import sys
import types

import numpy as np
import pytest

from pruning import cli
from pruning.config import ConfigError, DataConfig
from pruning.data import sources as pdata
import pruning.data as pload


def _arrays(n_train=20, n_test=8, shape=(6, 5, 3), classes=4, dtype=np.uint8, seed=0):
    rng = np.random.default_rng(seed)
    mk = lambda n: (rng.integers(0, 256, (n, *shape)).astype(dtype) if dtype == np.uint8  # noqa: E731
                    else rng.normal(0, 3, (n, *shape)).astype(dtype))
    return dict(x_train=mk(n_train), y_train=(np.arange(n_train) % classes).astype(np.int64),
                x_test=mk(n_test), y_test=(np.arange(n_test) % classes).astype(np.uint8))


def _npz(tmp_path, name="data.npz", **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


# --------------------------------------------------------------------------- shapes and scaling
def test_uint8_images_keep_their_shape_and_are_scaled_like_idx(tmp_path):
    a = _arrays()
    ds = pdata.load_npz(_npz(tmp_path, **a))
    assert ds.input_shape == (6, 5, 3) and ds.input_dim == 90 and ds.num_classes == 4
    assert ds.x_train.shape == (20, 90) and ds.x_train.dtype == np.float32  # flat, as every Dataset is
    assert np.array_equal(ds.x_train, a["x_train"].reshape(20, 90).astype(np.float32) / 255.0)
    assert np.array_equal(ds.shaped(ds.x_test), a["x_test"].astype(np.float32) / 255.0)
    assert ds.y_train.dtype == np.int32 and np.array_equal(ds.y_test, a["y_test"])
    d = ds.describe()
    assert d["dataset"] == "npz" and d["source"] == f"npz:{(tmp_path / 'data.npz').resolve()}"
    assert d["input_shape"] == [6, 5, 3] and d["num_classes"] == 4 and d["train_examples"] == 20


def test_float_inputs_are_kept_grey_images_get_one_channel_vectors_stay_flat(tmp_path):
    a = _arrays(shape=(4, 4), dtype=np.float64)
    ds = pdata.load_npz(_npz(tmp_path, **a))
    assert ds.input_shape == (4, 4, 1)
    assert np.array_equal(ds.x_train, a["x_train"].reshape(20, 16).astype(np.float32))  # not scaled
    v = _arrays(shape=(7,), dtype=np.float32)
    flat = pdata.load_npz(_npz(tmp_path, "flat.npz", **v))
    assert flat.input_shape == (7,) and flat.input_dim == 7 and np.array_equal(flat.x_test, v["x_test"])
    assert "input_shape" not in flat.describe()  # flat vectors are described as MNIST is


def test_labels_of_shape_n_by_1_and_a_num_classes_key(tmp_path):
    a = _arrays()
    a["y_train"] = a["y_train"][:, None]
    ds = pdata.load_npz(_npz(tmp_path, num_classes=np.int64(12), **a))
    assert ds.num_classes == 12 and ds.y_train.shape == (20,)


def test_the_fingerprint_covers_every_value_and_the_shape_not_the_path(tmp_path):
    a = _arrays()
    first = pdata.load_npz(_npz(tmp_path, "a.npz", **a)).fingerprint()
    assert pdata.load_npz(_npz(tmp_path, "copy.npz", **a)).fingerprint() == first  # same arrays elsewhere
    b = {k: v.copy() for k, v in a.items()}
    b["x_train"][7, 3, 2, 1] ^= 1  # one value of one image, not in a strided sample
    assert pdata.load_npz(_npz(tmp_path, "b.npz", **b)).fingerprint() != first
    flat = {k: (v.reshape(len(v), -1) if k.startswith("x") else v) for k, v in a.items()}
    assert pdata.load_npz(_npz(tmp_path, "flat.npz", **flat)).fingerprint() != first  # same values, other shape


def test_mnist_datasets_keep_their_fingerprint_and_description(tiny_data):
    """The new fields default to what MNIST always was: flat inputs, 10 classes; nothing changes."""
    assert tiny_data.input_shape == (100,) and tiny_data.num_classes == 10
    d = tiny_data.describe()
    assert "input_shape" not in d and "num_classes" not in d
    import hashlib
    h = hashlib.sha256()  # the fingerprint as written before input_shape existed
    h.update(b"all-images")
    for x in (tiny_data.x_train, tiny_data.x_test):
        h.update(np.ascontiguousarray(x).tobytes())
    for x in (tiny_data.y_train, tiny_data.y_test, tiny_data.x_train[::1], tiny_data.x_test[::1]):
        h.update(np.ascontiguousarray(x).tobytes())
    assert tiny_data.fingerprint() == h.hexdigest()[:16]


# --------------------------------------------------------------------------- each bad file: message, exit 2
def _bad(tmp_path, what):
    a = _arrays()
    if what == "missing key":
        a.pop("y_test")
    elif what == "nan":
        a = _arrays(dtype=np.float32)
        a["x_train"][3, 1, 1, 0] = np.nan
    elif what == "inf":
        a = _arrays(dtype=np.float64)
        a["x_test"][2, 0, 0, 0] = 1e300  # beyond float32
    elif what == "negative label":
        a["y_train"][5] = -1
    elif what == "label above num_classes":
        a["y_test"][3] = 9
        a["num_classes"] = np.int64(4)
    elif what == "float labels":
        a["y_train"] = a["y_train"].astype(np.float32)
    elif what == "one-hot labels":
        a["y_train"] = np.eye(4)[a["y_train"]].astype(np.int64)
    elif what == "count mismatch":
        a["y_train"] = a["y_train"][:-1]
    elif what == "shape mismatch":
        a["x_test"] = a["x_test"][:, :5]
    elif what == "empty":
        a["x_test"], a["y_test"] = a["x_test"][:0], a["y_test"][:0]
    elif what == "1-d images":
        a["x_train"] = a["x_train"].reshape(-1)
    elif what == "strings":
        a["x_train"] = np.array(["a"] * 20)
    elif what == "not npz":
        (tmp_path / "data.npz").write_text("x,y\n1,2\n")
        return tmp_path / "data.npz"
    elif what == "npy":
        np.save(tmp_path / "data.npz.npy", a["x_train"])
        (tmp_path / "data.npz.npy").rename(tmp_path / "data.npz")
        return tmp_path / "data.npz"
    elif what == "no file":
        return tmp_path / "nowhere.npz"
    return _npz(tmp_path, **a)


BAD = {
    "missing key": "has no y_test (it holds x_test, x_train, y_train)",
    "nan": "x_train holds 1 NaN or infinite values (first in example 3)",
    "inf": "x_test holds 1 NaN or infinite values (first in example 2, or values beyond float32's range)",
    "negative label": "y_train holds the negative label -1 at index 5",
    "label above num_classes": "y_test holds the label 9 at index 3, outside 0-3 (4 classes)",
    "float labels": "y_train holds float32 labels; labels must be integers (class numbers) (these are whole numbers",
    "one-hot labels": "(one-hot rows? pass y.argmax(axis=1))",
    "count mismatch": "y_train holds 19 labels but x_train holds 20 examples",
    "shape mismatch": "x_train's examples have shape (6, 5, 3) but x_test's (5, 5, 3)",
    "empty": "x_test is empty (shape (0, 6, 5, 3))",
    "1-d images": "x_train has shape (1800,); it must be (n, features)",
    "strings": "x_train holds <U1 values; inputs must be numbers",
    "not npz": "is not an .npz file (it starts with 0x782c790a312c; an .npz file is a zip archive",
    "npy": "is a single NumPy array (.npy), not an .npz archive",
    "no file": "nowhere.npz: no such file",
}


@pytest.mark.parametrize("what", BAD)
def test_each_bad_npz_is_one_paragraph_exit_2_and_nothing_written(what, tmp_path, capsys):
    path = _bad(tmp_path, what)
    logs = tmp_path / "logs"
    rc = cli.study_main_guarded(["--dataset", f"npz:{path}", "--logdir", str(logs), "--epochs", "1"])
    err = capsys.readouterr().err
    assert rc == 2 and BAD[what] in err, err
    assert err.startswith("error: ") and err.strip().count("\n") == 0  # one paragraph
    assert not logs.exists()


@pytest.mark.parametrize("dataset, message", [
    ("cifar10", "--dataset: unknown value 'cifar10'; choose one of mnist, fashion_mnist, or npz:PATH"),
    ("npz:", "--dataset npz: names no file; pass npz:PATH"),
    ("csv:data.csv", "unknown kind 'csv'"),
    ("tfds:cifar 10", "is not a tensorflow-datasets name"),
])
def test_a_malformed_dataset_is_a_usage_error(dataset, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        cli.study_main_guarded(["--dataset", dataset, "--logdir", str(tmp_path / "logs")])
    assert e.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "logs").exists()


def test_data_dir_and_data_source_do_not_apply_to_a_user_data_set():
    with pytest.raises(ConfigError, match="--data-dir does not apply to --dataset npz:x.npz"):
        DataConfig(dataset="npz:x.npz", data_dir="/tmp")
    with pytest.raises(ConfigError, match="--data-source does not apply to --dataset tfds:cifar10"):
        DataConfig(dataset="tfds:cifar10", data_source="idx")
    assert DataConfig(dataset="tfds:cifar10", data_source="tfds").dataset == "tfds:cifar10"


# --------------------------------------------------------------------------- tfds:NAME
def _fake_tfds(monkeypatch, prepared, image_shape=(32, 32, 3), classes=10):
    rng = np.random.default_rng(5)
    splits = {s: {"image": rng.integers(0, 256, (n, *image_shape)).astype(np.uint8),
                  "label": rng.integers(0, classes, n).astype(np.int64)} for s, n in (("train", 12), ("test", 6))}
    asked = []

    class Builder:
        URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
        info = types.SimpleNamespace(features={"label": types.SimpleNamespace(num_classes=classes)})

        def __init__(self, name):
            self.name = name

        def is_prepared(self):
            return prepared

        def as_dataset(self, split, batch_size):
            return splits[split]

    def builder(name):
        asked.append(name)
        return Builder(name)

    monkeypatch.setitem(sys.modules, "tensorflow_datasets", types.SimpleNamespace(builder=builder,
                                                                                 as_numpy=lambda t: t))
    return asked, splits


def test_tfds_name_reads_any_image_classification_set_in_its_shape(monkeypatch):
    asked, splits = _fake_tfds(monkeypatch, prepared=True, classes=100)
    ds = pload.load(DataConfig(dataset="tfds:cifar100"))
    assert asked == ["cifar100"] and ds.source == "tfds:cifar100" and ds.name == "cifar100"
    assert ds.input_shape == (32, 32, 3) and ds.num_classes == 100 and ds.x_train.shape == (12, 3072)
    assert np.array_equal(ds.shaped(ds.x_train), splits["train"]["image"].astype(np.float32) / 255.0)


def test_tfds_name_offline_fails_with_the_project_s_tfds_message_and_exit_2(monkeypatch, tmp_path, capsys):
    asked, _ = _fake_tfds(monkeypatch, prepared=False)
    probed = []
    monkeypatch.setattr(pdata, "_network_answers", lambda host_port=None, timeout=None: probed.append(host_port))
    logs = tmp_path / "logs"
    assert cli.study_main_guarded(["--dataset", "tfds:cifar10", "--logdir", str(logs)]) == 2
    err = capsys.readouterr().err
    assert ("error: --dataset tfds:cifar10 failed: tensorflow-datasets has no cached copy of cifar10 and the network "
            "does not answer. Run once where the network answers") in err
    assert probed == [("www.cs.toronto.edu", 443)] and asked == ["cifar10"] and not logs.exists()


def test_more_classes_than_the_built_in_networks_outputs_stops_before_anything_is_written(tmp_path, capsys):
    path = _npz(tmp_path, **_arrays(classes=12))
    logs = tmp_path / "logs"
    assert cli.study_main_guarded(["--dataset", f"npz:{path}", "--logdir", str(logs)]) == 2
    assert "the data has 12 classes, but --model mlp has 10 outputs" in capsys.readouterr().err
    assert not logs.exists()

"""pruning.deploy.sparse_format: exact round trips per encoding, sizes, atomic saves, and every corrupt-file case."""
import hashlib
import json
import os
import struct
import zipfile

import numpy as np
import pytest

from pruning.deploy.sparse_format import FORMAT, MAGIC, SparseFormatError, SparseLayer, VERSION, decode, dense_nbytes, encode, gzip_nbytes, index_dtype, load_sparse, save_sparse

MLP = (784, 1000, 1000, 500, 200, 10)


# ---------------------------------------------------------------------------- helpers


def _layer(shape, masked=0.0, seed=0, name="dense", relu=True):
    """A layer with exactly round(masked x size) entries masked (``masked=None``: no mask)."""
    rng = np.random.default_rng(seed)
    kernel = rng.normal(size=shape).astype(np.float32)
    if masked is None:
        return SparseLayer(name, kernel, None, relu)
    mask = np.ones(kernel.size, dtype=np.float32)
    mask[rng.permutation(kernel.size)[: int(round(masked * kernel.size))]] = 0.0
    mask = mask.reshape(shape)
    return SparseLayer(name, np.where(mask == 1, kernel, np.float32(0)), mask, relu)


def _split(blob: bytes) -> tuple[dict, bytes]:
    """(header, payload) of a file; a version-2 file's checksum trailer is dropped."""
    version, header_len = struct.unpack_from("<II", blob, 8)
    end = len(blob) - (32 if version >= 2 else 0)
    return json.loads(blob[16 : 16 + header_len]), blob[16 + header_len : end]


def _seal(body: bytes) -> bytes:
    """``body`` with the version-2 checksum trailer: the SHA-256 of every byte of it."""
    return body + hashlib.sha256(body).digest()


def _join(header: dict, payload: bytes, version: int = VERSION) -> bytes:
    """A file of ``header`` and ``payload``, re-sealed with a fresh checksum (from version 2), so that an
    edit reaches the check a test aims at instead of failing the checksum."""
    head = json.dumps(header, separators=(",", ":")).encode()
    body = MAGIC + struct.pack("<II", version, len(head)) + head + payload
    return _seal(body) if version >= 2 else body


def _v1(blob: bytes) -> bytes:
    """The version-1 file (no checksum trailer) of the same model as the version-2 ``blob``."""
    header, payload = _split(blob)
    return _join({**header, "version": 1}, payload, version=1)


def _encodings(blob: bytes) -> list[str]:
    return [entry["encoding"] for entry in _split(blob)[0]["layers"]]


def _edit_array(blob: bytes, layer: int, key: str, edit) -> bytes:
    """A copy of ``blob`` with one payload array changed in place by ``edit(array)``."""
    header, payload = _split(blob)
    record = header["layers"][layer]["arrays"][key]
    dtype, offset, nbytes = np.dtype(record["dtype"]), record["offset"], record["nbytes"]
    array = np.frombuffer(payload, dtype, nbytes // dtype.itemsize, offset).copy()
    edit(array)
    return _join(header, payload[:offset] + array.tobytes() + payload[offset + nbytes :])


def _assert_same(saved: list[SparseLayer], loaded: list[SparseLayer]) -> None:
    assert len(saved) == len(loaded)
    for a, b in zip(saved, loaded):
        assert (b.name, b.relu) == (a.name, a.relu)
        assert b.kernel.dtype == np.float32 and b.kernel.shape == a.kernel.shape
        assert b.kernel.tobytes() == a.kernel.tobytes()
        if a.mask is None:
            assert b.mask is None
        else:
            assert b.mask.dtype == np.float32 and np.array_equal(b.mask, a.mask)


def _load_error(tmp_path, blob: bytes) -> str:
    """The message load_sparse raises for ``blob``: one paragraph naming the file."""
    path = tmp_path / "model.spmlp"
    path.write_bytes(blob)
    with pytest.raises(SparseFormatError) as info:
        load_sparse(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    return message


@pytest.fixture(scope="module")
def model() -> list[SparseLayer]:
    """Three chained layers that use bitmap, csr (uint8 indices) and dense (no mask)."""
    return [
        _layer((20, 300), 0.5, seed=1, name="hidden_1"),
        _layer((300, 40), 0.99, seed=2, name="hidden_2"),
        _layer((40, 10), None, seed=3, name="output", relu=False),
    ]


@pytest.fixture(scope="module")
def blob(model) -> bytes:
    blob = encode(model, {"run": "weight_k50"})
    assert _encodings(blob) == ["bitmap", "csr", "dense"]
    return blob


# ---------------------------------------------------------------------------- round trips


@pytest.mark.parametrize(
    "masked, encoding",
    [(None, "dense"), (0.0, "dense"), (1 / 9000, "bitmap"), (0.5, "bitmap"), (0.9, "bitmap"),
     (0.99, "csr"), (1.0, "csr")],
    ids=["no-mask", "0%", "1-entry", "50%", "90%", "99%", "100%"],
)
def test_each_encoding_round_trips_kernel_bits_and_mask_exactly(masked, encoding):
    layers = [_layer((30, 300), masked, seed=4)]
    blob = encode(layers)
    assert _encodings(blob) == [encoding]
    loaded, meta = decode(blob)
    _assert_same(layers, loaded)
    assert meta == {}


def test_csr_index_dtype_is_the_smallest_that_holds_outputs_minus_one():
    assert [index_dtype(n).str for n in (1, 256, 257, 65536, 65537)] == ["|u1", "|u1", "<u2", "<u2", "<u4"]
    for cols, dtype in ((256, "|u1"), (257, "<u2")):
        layers = [_layer((50, cols), 0.99, seed=5)]
        blob = encode(layers)
        header, _ = _split(blob)
        assert header["layers"][0]["encoding"] == "csr"
        assert header["layers"][0]["arrays"]["indices"]["dtype"] == dtype
        _assert_same(layers, decode(blob)[0])


@pytest.mark.parametrize("masked", (0.5, 0.99), ids=("bitmap", "csr"))
def test_a_kept_zero_weight_comes_back_with_mask_one(masked):
    layer = _layer((30, 300), masked, seed=6)
    kept = np.argwhere(layer.mask == 1)[:3]
    layer.kernel[tuple(kept.T)] = 0.0
    layer.kernel[tuple(kept[:1].T)] = -0.0
    loaded = decode(encode([layer]))[0][0]
    assert loaded.mask[tuple(kept.T)].tolist() == [1.0, 1.0, 1.0]
    assert np.signbit(loaded.kernel[tuple(kept[0])])
    _assert_same([layer], [loaded])


@pytest.mark.parametrize("masked", (None, 0.5, 0.99))
def test_special_float_bit_patterns_survive(masked):
    layer = _layer((30, 300), masked, seed=7)
    bits = np.array([0x80000000, 0x7F800001, 0xFFC00123, 0x7F800000, 0x00000001], dtype=np.uint32)
    kept = np.argwhere(layer.mask == 1)[: bits.size] if masked else np.argwhere(layer.kernel == layer.kernel)[:5]
    layer.kernel.view(np.uint32)[tuple(kept.T)] = bits  # -0.0, signalling NaN, negative NaN, inf, subnormal
    loaded = decode(encode([layer]))[0][0]
    assert loaded.kernel.view(np.uint32)[tuple(kept.T)].tolist() == bits.tolist()
    _assert_same([layer], [loaded])


def test_a_masked_negative_zero_is_accepted_and_comes_back_as_zero():
    layer = _layer((30, 300), 0.5, seed=8)
    kernel = layer.kernel * np.where(layer.mask == 1, 1, -1).astype(np.float32)  # -0.0 where masked
    assert np.signbit(kernel[layer.mask == 0]).all()
    loaded = decode(encode([SparseLayer("neg", kernel, layer.mask, True)]))[0][0]
    assert np.array_equal(loaded.kernel, kernel) and not np.signbit(loaded.kernel[layer.mask == 0]).any()


def test_multi_layer_model_and_meta_round_trip(tmp_path, model):
    meta = {"run": "weight_k97.5", "sparsity": 97.5, "epochs": 3, "tags": ["a", "ü"], "nested": {"ok": True, "x": None}}
    path = tmp_path / "sub" / "model.spmlp"
    written = save_sparse(path, model, meta)
    assert written == path.stat().st_size
    loaded, loaded_meta = load_sparse(path)
    _assert_same(model, loaded)
    assert loaded_meta == meta
    assert load_sparse(path)[1] == meta and save_sparse(tmp_path / "m2", model) > 0
    assert load_sparse(tmp_path / "m2")[1] == {}


def test_loaded_kernels_are_writable_and_independent_of_the_bytes(blob):
    layers, _ = decode(blob)
    layers[0].kernel[0, 0] = 5.0
    assert decode(blob)[0][0].kernel[0, 0] != 5.0


def test_encode_is_deterministic_and_starts_with_the_documented_preamble(model, blob):
    assert encode(model, {"run": "weight_k50"}) == blob
    assert blob[:8] == MAGIC and struct.unpack_from("<I", blob, 8)[0] == VERSION
    header, payload = _split(blob)
    assert header["format"] == FORMAT and header["version"] == VERSION
    assert header["payload_nbytes"] == len(payload)
    assert b"pickle" not in blob and _join(header, payload) == blob


def test_a_file_ends_with_the_sha256_of_everything_before_it(blob):
    header_len = struct.unpack_from("<I", blob, 12)[0]
    assert len(blob) == 16 + header_len + _split(blob)[0]["payload_nbytes"] + 32
    assert blob[-32:] == hashlib.sha256(blob[:-32]).digest()


def test_version_1_files_without_a_checksum_are_still_read(tmp_path, model, blob):
    old = _v1(blob)
    assert struct.unpack_from("<I", old, 8)[0] == 1 and len(old) == len(blob) - 32
    path = tmp_path / "old.spmlp"
    path.write_bytes(old)
    loaded, meta = load_sparse(path)
    _assert_same(model, loaded)
    assert meta == {"run": "weight_k50"}
    # their size checks are unchanged: a checksum appended to a version-1 file is 32 trailing bytes
    assert "32 trailing bytes follow the payload" in _load_error(tmp_path, old + blob[-32:])
    assert "truncated" in _load_error(tmp_path, old[:-1])


def test_gzip_nbytes_is_deterministic_level_6_gzip():
    import gzip

    data = bytes(range(256)) * 40
    assert gzip_nbytes(data) == len(gzip.compress(data, compresslevel=6, mtime=0)) == gzip_nbytes(data)


# ---------------------------------------------------------------------------- sizes


@pytest.fixture(scope="module", params=(90, 99))
def big_model(request):
    """784-1000-1000-500-200-10: k% of each hidden kernel masked at random, the output unmasked."""
    k = request.param
    rng = np.random.default_rng(k)
    layers = []
    for i, shape in enumerate(zip(MLP, MLP[1:])):
        kernel = rng.standard_normal(shape, dtype=np.float32)
        last = i == len(MLP) - 2
        mask = None if last else (rng.random(shape, dtype=np.float32) >= k / 100).astype(np.float32)
        layers.append(SparseLayer(f"dense_{i}", kernel if last else kernel * mask, mask, not last))
    return k, layers


def test_random_mask_mlp_is_at_least_6x_smaller_at_k90_and_40x_at_k99(big_model):
    k, layers = big_model
    blob = encode(layers, {"sparsity": k})
    assert dense_nbytes(layers) == 4 * sum(a * b for a, b in zip(MLP, MLP[1:]))
    ratio = dense_nbytes(layers) / len(blob)
    assert ratio >= {90: 6, 99: 40}[k]
    assert _encodings(blob)[-1] == "dense"
    loaded, meta = decode(blob)
    assert meta == {"sparsity": k}
    for a, b in zip(layers, loaded):
        assert np.array_equal(a.kernel, b.kernel) and (a.mask is None) == (b.mask is None)
        assert a.mask is None or np.array_equal(a.mask, b.mask)


# ---------------------------------------------------------------------------- atomic save


def test_save_is_atomic_and_leaves_no_temp_file(tmp_path, model):
    path = tmp_path / "model.spmlp"
    save_sparse(path, model[:1])
    save_sparse(path, model, {"v": 2})
    assert sorted(os.listdir(tmp_path)) == ["model.spmlp"]
    assert load_sparse(path)[1] == {"v": 2}


def test_failed_save_keeps_the_old_file_and_removes_the_temp(tmp_path, model, monkeypatch):
    path = tmp_path / "model.spmlp"
    save_sparse(path, model, {"v": 1})
    before = path.read_bytes()
    with pytest.raises(ValueError):
        save_sparse(path, [model[1], model[0]])
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        save_sparse(path, model, {"v": 2})
    assert sorted(os.listdir(tmp_path)) == ["model.spmlp"] and path.read_bytes() == before


# ---------------------------------------------------------------------------- invalid input


def _with(layer, **changes):
    fields = {"name": layer.name, "kernel": layer.kernel, "mask": layer.mask, "relu": layer.relu, **changes}
    return SparseLayer(**fields)


@pytest.mark.parametrize(
    "change, phrase",
    [
        (lambda l: [_with(l, kernel=l.kernel.astype(np.float64))], "2-D float32"),
        (lambda l: [_with(l, kernel=l.kernel.ravel(), mask=None)], "2-D float32"),
        (lambda l: [_with(l, kernel=l.kernel.tolist())], "2-D float32"),
        (lambda l: [_with(l, mask=l.mask[:, :-1])], "mask shape"),
        (lambda l: [_with(l, mask=l.mask * 2)], "only 0 and 1"),
        (lambda l: [_with(l, kernel=l.kernel + np.float32(1))], "nonzero where the mask is 0"),
        (lambda l: [_with(l, kernel=np.where(l.mask == 0, np.float32("nan"), l.kernel))], "nonzero where the mask is 0"),
        (lambda l: [l, l], "do not chain"),
        (lambda l: [_with(l, name=3)], "name"),
        (lambda l: [_with(l, relu="yes")], "relu"),
        (lambda l: [_with(l, kernel=np.zeros((0, 4), np.float32), mask=None)], "empty dimension"),
        (lambda l: ["not a layer"], "SparseLayer"),
    ],
    ids=["float64", "1-D", "list", "mask-shape", "mask-values", "unmasked-weights", "masked-nan", "chain",
         "name", "relu", "empty", "not-a-layer"],
)
def test_save_rejects_invalid_layers_with_a_clear_value_error(tmp_path, change, phrase):
    layers = change(_layer((6, 7), 0.5, seed=9))
    with pytest.raises(ValueError, match=phrase):
        save_sparse(tmp_path / "bad.spmlp", layers)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("meta", (["list"], {"x": object()}, {"x": float("nan")}, {1: {2: set()}}))
def test_save_rejects_meta_that_is_not_a_json_dict(tmp_path, model, meta):
    with pytest.raises(ValueError, match="meta must be"):
        save_sparse(tmp_path / "bad.spmlp", model, meta)


# ---------------------------------------------------------------------------- corrupt files


def test_missing_file(tmp_path):
    path = tmp_path / "nowhere.spmlp"
    with pytest.raises(SparseFormatError, match="does not exist") as info:
        load_sparse(path)
    assert str(path) in str(info.value)


def test_a_directory_is_an_unreadable_file(tmp_path):
    with pytest.raises(SparseFormatError, match="cannot be read"):
        load_sparse(tmp_path)


def test_keras_zip_is_the_wrong_format(tmp_path):
    path = tmp_path / "model.keras"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", "{}")
    with pytest.raises(SparseFormatError, match=f"not a {FORMAT} file") as info:
        load_sparse(path)
    assert "load_model" in str(info.value) and str(path) in str(info.value)


@pytest.mark.parametrize("data", (bytes(range(7, 200)), b"PK\x03", b"XRNSPMLP" + bytes(100)), ids=("random", "short", "1-byte"))
def test_other_bytes_are_the_wrong_format(tmp_path, data):
    assert f"not a {FORMAT} file" in _load_error(tmp_path, data)


@pytest.mark.parametrize("version", (0, 3, 7))
def test_other_version_names_it_and_the_versions_read(tmp_path, blob, version):
    header, payload = _split(blob)
    message = _load_error(tmp_path, _join({**header, "version": version}, payload, version=version))
    assert f"version {version}," in message and "reads versions 1 and 2 only" in message and "Re-save it" in message


def test_header_version_must_match_the_preamble(tmp_path, blob):
    header, payload = _split(blob)
    assert "says version 7" in _load_error(tmp_path, _join({**header, "version": 7}, payload))


@pytest.mark.parametrize("where", ("empty", "magic", "preamble", "header", "payload-start", "payload-end",
                                   "checksum-start", "checksum-end"))
def test_truncated_file(tmp_path, blob, where):
    header_end = 16 + struct.unpack_from("<I", blob, 12)[0]
    cut = {"empty": 0, "magic": 5, "preamble": 12, "header": header_end - 10, "payload-start": header_end,
           "payload-end": len(blob) - 33, "checksum-start": len(blob) - 32, "checksum-end": len(blob) - 1}[where]
    message = _load_error(tmp_path, blob[:cut])
    assert "truncated" in message and "re-run the step that wrote it" in message
    assert ("checksum trailer" in message) == where.startswith("checksum")


@pytest.fixture(scope="module")
def small_blob() -> bytes:
    """A small bitmap + csr + dense file for the exhaustive damage tests."""
    layers = [_layer((4, 40), 0.5, seed=10), _layer((40, 64), 0.99, seed=11), _layer((64, 2), None, seed=12)]
    blob = encode(layers, {"k": 1})
    assert _encodings(blob) == ["bitmap", "csr", "dense"]
    return blob


def test_every_prefix_of_a_file_is_reported_as_truncated(small_blob):
    for n in range(len(small_blob)):
        with pytest.raises(SparseFormatError, match="truncated"):
            decode(small_blob[:n])


def test_every_single_byte_change_anywhere_is_a_sparse_format_error(small_blob):
    """Values included: the checksum covers every byte, so no damage decodes or escapes as another exception."""
    for i in range(len(small_blob)):
        for flip in (0x01, 0x80, 0xFF):
            damaged = bytearray(small_blob)
            damaged[i] ^= flip
            with pytest.raises(SparseFormatError):
                decode(bytes(damaged))


def _flip_checked(tmp_path, blob: bytes, i: int, flip: int) -> str:
    damaged = bytearray(blob)
    damaged[i] ^= flip
    message = _load_error(tmp_path, bytes(damaged))
    assert "checksum" in message and "damaged after it was written" in message
    assert "delete that run's directory" in message and "--overwrite" in message
    return message


def test_a_flipped_byte_in_the_values_is_refused_by_the_checksum(tmp_path, blob):
    header, payload = _split(blob)
    record = header["layers"][1]["arrays"]["values"]
    i = len(blob) - 32 - len(payload) + record["offset"] + 5
    message = _flip_checked(tmp_path, blob, i, 0x01)
    stored, computed = blob[-32:].hex()[:16], hashlib.sha256(blob[:i] + bytes([blob[i] ^ 1]) + blob[i + 1 : -32])
    assert stored in message and computed.hexdigest()[:16] in message


def test_a_flipped_byte_in_a_layer_name_is_refused_by_the_checksum(tmp_path, blob):
    i = blob.index(b'"hidden_2"') + 1
    assert blob[i : i + 1] == b"h"
    _flip_checked(tmp_path, blob, i, 0x20)  # "Hidden_2": the header is still valid JSON with valid fields


def test_a_flipped_byte_in_the_checksum_is_refused(tmp_path, blob):
    _flip_checked(tmp_path, blob, len(blob) - 1, 0x01)


def test_trailing_bytes(tmp_path, blob):
    assert "1 trailing bytes follow the checksum trailer" in _load_error(tmp_path, blob + b"\0")


@pytest.mark.parametrize("head", (b"not json at all", b"\xff\xfe{}", b'{"format": "pruning-'), ids=("text", "utf8", "cut"))
def test_header_that_is_not_json(tmp_path, blob, head):
    _, payload = _split(blob)
    data = _seal(MAGIC + struct.pack("<II", VERSION, len(head)) + head + payload)
    assert "header is not valid UTF-8 JSON" in _load_error(tmp_path, data)


def test_header_that_is_not_an_object(tmp_path):
    head = b"[1, 2]"
    assert "not an object" in _load_error(tmp_path, _seal(MAGIC + struct.pack("<II", VERSION, len(head)) + head))


@pytest.mark.parametrize(
    "path",
    [("format",), ("version",), ("meta",), ("payload_nbytes",), ("layers",),
     ("layers", 1, "name"), ("layers", 1, "shape"), ("layers", 1, "relu"), ("layers", 1, "has_mask"),
     ("layers", 1, "encoding"), ("layers", 1, "nnz"), ("layers", 1, "arrays"),
     ("layers", 1, "arrays", "values", "offset"), ("layers", 0, "arrays", "bitmap", "nbytes"),
     ("layers", 1, "arrays", "indices", "dtype")],
    ids=lambda p: "/".join(map(str, p)),
)
def test_header_missing_a_field(tmp_path, blob, path):
    header, payload = _split(blob)
    obj = header
    for key in path[:-1]:
        obj = obj[key]
    del obj[path[-1]]
    message = _load_error(tmp_path, _join(header, payload))
    assert f"missing the field {path[-1]!r}" in message


@pytest.mark.parametrize(
    "layer, key, value, phrase",
    [
        (None, "format", "other-format", "names format"),
        (None, "layers", {"a": 1}, "expected a list"),
        (None, "meta", [1], "expected an object"),
        (1, "nnz", -1, "non-negative integer"),
        (1, "nnz", True, "non-negative integer"),
        (1, "nnz", 10**9, "nnz 1000000000 >"),
        (1, "shape", [300], "two positive integers"),
        (1, "shape", [300, 0], "two positive integers"),
        (1, "encoding", "zstd", "unknown encoding"),
        (1, "has_mask", False, "no mask"),
        (2, "nnz", 399, "is dense but nnz"),
        (2, "relu", "no", "true or false"),
    ],
)
def test_header_with_a_bad_value(tmp_path, blob, layer, key, value, phrase):
    header, payload = _split(blob)
    (header if layer is None else header["layers"][layer])[key] = value
    assert phrase in _load_error(tmp_path, _join(header, payload))


@pytest.mark.parametrize(
    "edit, phrase",
    [
        (lambda h: h["layers"][1].update(nnz=h["layers"][1]["nnz"] + 1), "need"),
        (lambda h: h["layers"][0].update(shape=[21, 300]), "need"),
        (lambda h: h["layers"][0]["arrays"]["values"].update(nbytes=4), "need"),
        (lambda h: h["layers"][1]["arrays"]["indices"].update(dtype="<u2"), "expected '|u1'"),
        (lambda h: h["layers"][1]["arrays"].pop("indptr"), "encoding needs"),
        (lambda h: h["layers"][2]["arrays"]["values"].update(offset=0), "starts at payload offset"),
        (lambda h: h.update(payload_nbytes=h["payload_nbytes"] + 4), "add up to"),
    ],
    ids=["nnz", "shape", "values-nbytes", "index-dtype", "arrays", "offset", "payload-nbytes"],
)
def test_array_records_that_disagree_with_shape_or_nnz(tmp_path, blob, edit, phrase):
    header, payload = _split(blob)
    edit(header)
    assert phrase in _load_error(tmp_path, _join(header, payload))


def test_layer_shapes_that_do_not_chain(tmp_path, blob):
    header, payload = _split(blob)
    header["layers"][2]["shape"] = [10, 40]  # same size, so only the chain is wrong
    message = _load_error(tmp_path, _join(header, payload))
    assert "do not chain" in message and "layer 1 has 40 outputs but layer 2 has 10 inputs" in message


def test_csr_index_out_of_range(tmp_path, blob):
    def edit(indices):
        indices[0] = 40

    assert "column index 40 out of range for 40 outputs" in _load_error(tmp_path, _edit_array(blob, 1, "indices", edit))


def test_csr_row_pointer_that_decreases(tmp_path, blob):
    def edit(indptr):
        indptr[150] = indptr[-1] + 5

    assert "non-decreasing" in _load_error(tmp_path, _edit_array(blob, 1, "indptr", edit))


@pytest.mark.parametrize("delta", (-1, 1))
def test_csr_row_pointer_that_does_not_end_at_nnz(tmp_path, blob, delta):
    def edit(indptr):
        indptr[-1] = int(indptr[-1]) + delta

    assert "does not end at nnz" in _load_error(tmp_path, _edit_array(blob, 1, "indptr", edit))


def test_csr_indices_that_repeat_or_go_backwards_in_a_row(tmp_path, model, blob):
    counts = (model[1].mask != 0).sum(axis=1)
    row = int(np.flatnonzero(counts >= 2)[0])
    start = int(counts[:row].sum())

    def edit(indices):
        indices[start + 1] = indices[start]

    assert "strictly increasing" in _load_error(tmp_path, _edit_array(blob, 1, "indices", edit))


def test_bitmap_popcount_that_differs_from_nnz(tmp_path, model, blob):
    first_masked = int(np.flatnonzero(model[0].mask.ravel() == 0)[0])

    def edit(bitmap):
        bitmap[first_masked // 8] |= 0x80 >> (first_masked % 8)

    message = _load_error(tmp_path, _edit_array(blob, 0, "bitmap", edit))
    assert "popcount" in message and "nnz is 3000" in message


def test_bitmap_bits_set_past_the_last_entry(tmp_path):
    blob = encode([_layer((3, 300), 0.5, seed=13)])  # 900 entries: 4 padding bits
    assert _encodings(blob) == ["bitmap"]

    def edit(bitmap):
        bitmap[-1] |= 0x01

    assert "bits set past" in _load_error(tmp_path, _edit_array(blob, 0, "bitmap", edit))

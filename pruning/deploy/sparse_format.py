"""A compact, lossless, versioned file format for a pruned bias-free ReLU network.

A model is a list of ``SparseLayer``: a float32 kernel shaped (inputs, outputs), an
optional 0/1 mask of the same shape (None for an unpruned layer, e.g. the output)
and a ReLU flag. A convolution is stored as its kernel's (fan-in, filters) matrix,
``kernel.reshape(-1, filters)``, and ``pruning.deploy.export`` records its shape in the
header's meta, so the file is lossless for a CNN too; consecutive layers chain when the
inputs of one are a multiple of the outputs of the one before (positions x channels). A file (format version 2) is::

    b"PRNSPMLP"                 8 bytes, the magic
    VERSION                     uint32 little-endian
    header length               uint32 little-endian
    header                      UTF-8 JSON: format, version, meta, payload_nbytes, layers
    payload                     the layers' arrays, back to back, in header order
    checksum                    32 bytes: the raw SHA-256 digest of every byte before it
                                (magic, version, header length, header and payload)

Version 1 files are the same without the checksum; they are still read (and decoded exactly as
before), but always written as version 2. The checksum catches damage the structural checks
cannot see: a changed weight value, or a changed letter in the header's strings.

Per layer only the kept positions (mask == 1; all of them when the mask is None) are
stored, with the kernel's raw float32 bits at those positions in C (row-major) order,
so -0.0 and NaN payloads survive. Positions come from the mask, not from the values:
a kept weight that happens to be 0.0 is still kept. Each layer uses the smallest of:

* ``dense``: all values, no index (a layer without mask, or with an all-ones mask);
* ``bitmap``: ``np.packbits`` of the mask (big bit order) + the kept values;
* ``csr``: row pointer (uint32, inputs + 1) + column indices in the smallest unsigned
  dtype that holds ``outputs - 1`` + the kept values.

Masked kernel entries must be zero; they come back as +0.0 (a -0.0 left there by
``kernel * mask`` is accepted and read back as +0.0, equal in value). Reading checks
everything a damaged or foreign file can get wrong and raises ``SparseFormatError``
with a message that names the file, the problem and the fix: the structure (preamble, header,
array layout, file size) is checked first, then the checksum, then the arrays' contents. Writing is
atomic.
No pickle, no TensorFlow: NumPy and the standard library only.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..files import atomic_write_bytes

FORMAT = "pruning-sparse-mlp"
VERSION = 2  # what encode writes
READ_VERSIONS = (1, 2)  # what decode reads: 1 has no checksum trailer
CHECKSUM_SINCE = 2  # the first version that ends with a checksum
DIGEST_SIZE = hashlib.sha256().digest_size  # 32 bytes
MAGIC = b"PRNSPMLP"
PREAMBLE = struct.Struct("<II")  # version, header length
PREAMBLE_END = len(MAGIC) + PREAMBLE.size

ENCODINGS = ("dense", "bitmap", "csr")  # also the tie-break order when sizes are equal
ARRAYS = {"dense": ("values",), "bitmap": ("bitmap", "values"), "csr": ("indptr", "indices", "values")}
VALUES_DTYPE = np.dtype("<u4")  # float32 bits, handled as integers so no bit pattern is touched
BITMAP_DTYPE = np.dtype("|u1")
INDPTR_DTYPE = np.dtype("<u4")
INDEX_DTYPES = (np.dtype("|u1"), np.dtype("<u2"), np.dtype("<u4"))

RESAVE = "re-run the step that wrote it (or re-save the model with save_sparse)"


class SparseFormatError(Exception):
    """A sparse model file cannot be read: the message names the file, the problem and the fix."""


@dataclass(frozen=True, eq=False)
class SparseLayer:
    """One dense layer of the MLP (``eq=False``: arrays have no single truth value)."""

    name: str
    kernel: np.ndarray  # float32, shape (in, out); entries where mask == 0 must be exactly 0
    mask: np.ndarray | None  # float32 0/1, same shape, or None (an unpruned layer)
    relu: bool


# ---------------------------------------------------------------------------- sizes


GZIP_LEVEL = 6


def dense_nbytes(layers: list[SparseLayer]) -> int:
    """Bytes of all kernels stored dense as float32: 4 * sum(kernel.size)."""
    return 4 * sum(int(np.asarray(layer.kernel).size) for layer in layers)


def gzip_nbytes(blob: bytes) -> int:
    """Size of ``blob`` after gzip at level 6, gzip's default (mtime=0, so it is deterministic). Level 9
    took 3-6x as long on a study's weights (4.1 s against 0.7 s per model at k = 90, on the critical path
    of every run) for files 0.3-5 % smaller."""
    return len(gzip.compress(blob, compresslevel=GZIP_LEVEL, mtime=0))


def index_dtype(outputs: int) -> np.dtype:
    """The smallest little-endian unsigned dtype that holds column index ``outputs - 1``."""
    for dtype in INDEX_DTYPES:
        if outputs - 1 <= np.iinfo(dtype).max:
            return dtype
    raise ValueError(f"{outputs} outputs do not fit a uint32 column index")


def encoding_sizes(shape: tuple[int, int], nnz: int, all_kept: bool) -> dict[str, int]:
    """Payload bytes of each usable encoding for a layer with ``nnz`` kept entries."""
    rows, cols = shape
    size = rows * cols
    sizes = {
        "bitmap": (size + 7) // 8 + 4 * nnz,
        "csr": INDPTR_DTYPE.itemsize * (rows + 1) + (index_dtype(cols).itemsize + 4) * nnz,
    }
    if all_kept:
        sizes = {"dense": 4 * size, **sizes}
    return sizes


def choose_encoding(shape: tuple[int, int], nnz: int, all_kept: bool) -> str:
    """The smallest encoding; ties go to the earlier of dense, bitmap, csr."""
    sizes = encoding_sizes(shape, nnz, all_kept)
    return min(sizes, key=lambda name: (sizes[name], ENCODINGS.index(name)))


# ---------------------------------------------------------------------------- writing


def _check_layer(i: int, layer: SparseLayer) -> np.ndarray:
    """Validate one layer for writing; returns its boolean keep array."""
    where = f"layer {i} ({getattr(layer, 'name', '?')!r})"
    if not isinstance(layer, SparseLayer):
        raise ValueError(f"{where} is a {type(layer).__name__}, expected a SparseLayer")
    if not isinstance(layer.name, str):
        raise ValueError(f"{where}: name must be a str, got {type(layer.name).__name__}")
    if not isinstance(layer.relu, (bool, np.bool_)):
        raise ValueError(f"{where}: relu must be a bool, got {type(layer.relu).__name__}")
    kernel = layer.kernel
    if not isinstance(kernel, np.ndarray) or kernel.dtype != np.float32 or kernel.ndim != 2:
        got = f"{kernel.dtype} array of shape {kernel.shape}" if isinstance(kernel, np.ndarray) else type(kernel).__name__
        raise ValueError(f"{where}: kernel must be a 2-D float32 array (inputs, outputs), got a {got}")
    if min(kernel.shape) < 1:
        raise ValueError(f"{where}: kernel shape {kernel.shape} has an empty dimension")
    index_dtype(kernel.shape[1])
    if layer.mask is None:
        return np.ones(kernel.shape, dtype=bool)
    mask = np.asarray(layer.mask)
    if mask.shape != kernel.shape:
        raise ValueError(f"{where}: mask shape {mask.shape} differs from kernel shape {kernel.shape}")
    if not np.isin(mask, (0, 1)).all():
        raise ValueError(f"{where}: mask must contain only 0 and 1")
    keep = mask != 0
    bad = np.count_nonzero(kernel[~keep] != 0)  # NaN counts as nonzero
    if bad:
        raise ValueError(
            f"{where}: {bad} kernel entries are nonzero where the mask is 0; apply the mask "
            f"(kernel * mask) before saving"
        )
    return keep


def _check_chain(shapes: list[tuple[int, int]]) -> str | None:
    """A message if consecutive layer shapes do not chain: layer i+1's inputs must be a multiple of layer
    i's outputs (equal for dense after dense; positions x channels after a convolution)."""
    for i in range(len(shapes) - 1):
        if shapes[i + 1][0] % shapes[i][1]:
            return (
                f"layer {i} has {shapes[i][1]} outputs but layer {i + 1} has {shapes[i + 1][0]} inputs, not a "
                f"multiple of them (shapes {shapes[i]} then {shapes[i + 1]})"
            )
    return None


def _layer_arrays(layer: SparseLayer, keep: np.ndarray, encoding: str) -> dict[str, np.ndarray]:
    """The arrays ``encoding`` stores for a layer, in payload order, as little-endian dtypes."""
    bits = np.ascontiguousarray(layer.kernel).view(np.uint32)
    values = bits[keep].astype(VALUES_DTYPE)  # boolean indexing walks in C order
    if encoding == "dense":
        return {"values": values}
    if encoding == "bitmap":
        return {"bitmap": np.packbits(keep.ravel()).astype(BITMAP_DTYPE), "values": values}
    indptr = np.zeros(keep.shape[0] + 1, dtype=INDPTR_DTYPE)
    np.cumsum(keep.sum(axis=1), out=indptr[1:])
    indices = np.nonzero(keep)[1].astype(index_dtype(keep.shape[1]))
    return {"indptr": indptr, "indices": indices, "values": values}


def _check_meta(meta: dict | None) -> dict:
    meta = {} if meta is None else meta
    if not isinstance(meta, dict):
        raise ValueError(f"meta must be a dict, got {type(meta).__name__}")
    try:
        json.dumps(meta, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ValueError(
            f"meta must be JSON-able (str keys; str, int, finite float, bool, None, list, dict): {e}"
        ) from None
    return meta


def encode(layers: list[SparseLayer], meta: dict | None = None) -> bytes:
    """The file bytes for ``layers`` and ``meta``; raises ValueError on invalid input."""
    meta = _check_meta(meta)
    keeps = [_check_layer(i, layer) for i, layer in enumerate(layers)]
    problem = _check_chain([layer.kernel.shape for layer in layers])
    if problem:
        raise ValueError(f"the layers do not chain: {problem}")
    entries, chunks, offset = [], [], 0
    for layer, keep in zip(layers, keeps):
        nnz = int(np.count_nonzero(keep))
        encoding = choose_encoding(keep.shape, nnz, nnz == keep.size)
        arrays = {}
        for key, array in _layer_arrays(layer, keep, encoding).items():
            arrays[key] = {"dtype": array.dtype.str, "offset": offset, "nbytes": array.nbytes}
            chunks.append(array.tobytes())
            offset += array.nbytes
        entries.append({
            "name": layer.name, "shape": list(keep.shape), "relu": bool(layer.relu),
            "has_mask": layer.mask is not None, "encoding": encoding, "nnz": nnz, "arrays": arrays,
        })
    header = {"format": FORMAT, "version": VERSION, "meta": meta, "payload_nbytes": offset, "layers": entries}
    head = json.dumps(header, separators=(",", ":"), allow_nan=False).encode("utf-8")
    body = MAGIC + PREAMBLE.pack(VERSION, len(head)) + head + b"".join(chunks)
    return body + hashlib.sha256(body).digest()


def save_sparse(path: str | Path, layers: list[SparseLayer], meta: dict | None = None) -> int:
    """Write ``layers`` to ``path`` atomically (temp file + os.replace); returns the bytes written."""
    blob = encode(layers, meta)
    atomic_write_bytes(path, blob)
    return len(blob)


# ---------------------------------------------------------------------------- reading


def stored_kernels(stored: list[SparseLayer], meta: dict) -> list[np.ndarray]:
    """The kernels of a file ``load_sparse`` read, in their layers' own shapes: a convolution's 4-D
    shape comes from the header's meta (``kernel_shapes``, written by ``pruning.deploy.export``)."""
    shapes = (meta or {}).get("kernel_shapes") or {}
    return [np.asarray(s.kernel).reshape(shapes.get(s.name, np.shape(s.kernel))) for s in stored]


def full_size_kernels(stored: list[SparseLayer], meta: dict) -> list[np.ndarray]:
    """The stored (effective) kernels put back at their places in the unpruned network, from the meta
    ``pruning.deploy.export`` writes (original shapes, kept units): what a saved network computes,
    read without TensorFlow."""
    from .shrink import expand

    kernels = stored_kernels(stored, meta)
    full_shapes = [tuple(s) for s in meta["full_shapes"]]
    kept_meta = meta.get("kept") or {}
    kept = [kept_meta.get(s.name) or range(np.shape(k)[-1]) for s, k in zip(stored, kernels)]
    return expand(kernels, [None] * len(kernels), full_shapes, kept)[0]


def _truncated(source: str, where: str, have: int, need: int) -> SparseFormatError:
    return SparseFormatError(
        f"{source} is truncated in the {where} ({have} bytes, at least {need} expected): the file was "
        f"probably copied or written partially; {RESAVE}."
    )


def _corrupt(source: str, problem: str) -> SparseFormatError:
    return SparseFormatError(
        f"{source} is not a valid {FORMAT} file: {problem}. The file is damaged or was modified after "
        f"it was written; {RESAVE}."
    )


def _read_preamble(blob: bytes, source: str) -> tuple[int, int]:
    """Check magic and version; returns (version, header length)."""
    if len(blob) < len(MAGIC) and MAGIC.startswith(blob):
        raise _truncated(source, "magic bytes", len(blob), PREAMBLE_END)
    if blob[: len(MAGIC)] != MAGIC:
        raise SparseFormatError(
            f"{source} is not a {FORMAT} file: it starts with {bytes(blob[:8])!r}, not {MAGIC!r} (a .keras "
            f"or .h5 model is loaded with keras.models.load_model instead). Pass a file written by "
            f"save_sparse, or re-save the model with it."
        )
    if len(blob) < PREAMBLE_END:
        raise _truncated(source, "preamble (version and header length)", len(blob), PREAMBLE_END)
    version, header_len = PREAMBLE.unpack_from(blob, len(MAGIC))
    if version not in READ_VERSIONS:
        readable = " and ".join(map(str, READ_VERSIONS))
        raise SparseFormatError(
            f"{source} is a {FORMAT} file of format version {version}, but this toolkit reads versions "
            f"{readable} only. Re-save it with this version of the toolkit, or read it with the toolkit "
            f"version that wrote it."
        )
    return version, header_len


def _parse_header(blob: bytes, header_len: int, source: str) -> dict:
    end = PREAMBLE_END + header_len
    if len(blob) < end:
        raise _truncated(source, "header", len(blob), end)
    try:
        header = json.loads(bytes(blob[PREAMBLE_END:end]).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise _corrupt(source, f"the header is not valid UTF-8 JSON ({e})") from None
    if not isinstance(header, dict):
        raise _corrupt(source, f"the header is a JSON {type(header).__name__}, not an object")
    return header


_KINDS = {int: "a non-negative integer", str: "a string", bool: "true or false", dict: "an object", list: "a list"}


def _field(obj: dict, key: str, kind: type, source: str, where: str = "the header"):
    """``obj[key]`` if present and of ``kind`` (ints: exact, non-negative), else SparseFormatError."""
    if key not in obj:
        raise _corrupt(source, f"{where} is missing the field {key!r}")
    value = obj[key]
    if type(value) is not kind or (kind is int and value < 0):
        raise _corrupt(source, f"field {key!r} in {where} is {value!r}, expected {_KINDS[kind]}")
    return value


def _check_header(header: dict, version: int, source: str) -> None:
    """Top-level fields: format name, version (the preamble's), meta, payload size, layer list."""
    if _field(header, "format", str, source) != FORMAT:
        raise _corrupt(source, f"the header names format {header['format']!r}, not {FORMAT!r}")
    if _field(header, "version", int, source) != version:
        raise _corrupt(source, f"the header says version {header['version']}, the preamble says {version}")
    _field(header, "meta", dict, source)
    _field(header, "payload_nbytes", int, source)
    for i, entry in enumerate(_field(header, "layers", list, source)):
        if not isinstance(entry, dict):
            raise _corrupt(source, f"layer {i} in the header is not an object")


def _expected_arrays(entry: dict, source: str, where: str) -> dict[str, tuple[np.dtype, int]]:
    """Validate a layer's scalar fields; returns {array: (dtype, nbytes)} its encoding implies."""
    _field(entry, "name", str, source, where)
    _field(entry, "relu", bool, source, where)
    shape = _field(entry, "shape", list, source, where)
    if len(shape) != 2 or any(type(n) is not int or n < 1 for n in shape):
        raise _corrupt(source, f"{where} has shape {shape!r}, expected two positive integers")
    rows, cols = shape
    has_mask = _field(entry, "has_mask", bool, source, where)
    encoding = _field(entry, "encoding", str, source, where)
    if encoding not in ENCODINGS:
        raise _corrupt(source, f"{where} has unknown encoding {encoding!r} (known: {', '.join(ENCODINGS)})")
    nnz = _field(entry, "nnz", int, source, where)
    if nnz > rows * cols:
        raise _corrupt(source, f"{where} has nnz {nnz} > {rows}x{cols} entries")
    if not has_mask and encoding != "dense":
        raise _corrupt(source, f"{where} has no mask but encoding {encoding!r}; only 'dense' stores a layer without mask")
    if encoding == "dense" and nnz != rows * cols:
        raise _corrupt(source, f"{where} is dense but nnz is {nnz}, not {rows}x{cols} = {rows * cols}")
    if cols - 1 > np.iinfo(INDEX_DTYPES[-1]).max:
        raise _corrupt(source, f"{where} has {cols} outputs, more than a uint32 column index holds")
    expected = {
        "values": (VALUES_DTYPE, 4 * nnz),
        "bitmap": (BITMAP_DTYPE, (rows * cols + 7) // 8),
        "indptr": (INDPTR_DTYPE, INDPTR_DTYPE.itemsize * (rows + 1)),
        "indices": (index_dtype(cols), index_dtype(cols).itemsize * nnz),
    }
    return {key: expected[key] for key in ARRAYS[encoding]}


def _check_arrays(entry: dict, offset: int, source: str, where: str) -> int:
    """Check a layer's array records against its shape/nnz and the running offset; returns the new offset."""
    expected = _expected_arrays(entry, source, where)
    arrays = _field(entry, "arrays", dict, source, where)
    if set(arrays) != set(expected):
        raise _corrupt(source, f"{where} stores arrays {sorted(arrays)}, its encoding needs {sorted(expected)}")
    for key, (dtype, nbytes) in expected.items():
        record, at = arrays[key], f"array {key!r} of {where}"
        if not isinstance(record, dict):
            raise _corrupt(source, f"{at} is not an object")
        if _field(record, "dtype", str, source, at) != dtype.str:
            raise _corrupt(source, f"{at} has dtype {record['dtype']!r}, expected {dtype.str!r}")
        if _field(record, "nbytes", int, source, at) != nbytes:
            raise _corrupt(
                source, f"{at} is {record['nbytes']} bytes, but shape {entry['shape']} and nnz {entry['nnz']} "
                f"need {nbytes} bytes"
            )
        if _field(record, "offset", int, source, at) != offset:
            raise _corrupt(source, f"{at} starts at payload offset {record['offset']}, expected {offset}")
        offset += nbytes
    return offset


def _check_layout(header: dict, source: str) -> None:
    """Per-layer fields, array sizes and offsets (back to back), payload size, shape chain."""
    offset = 0
    for i, entry in enumerate(header["layers"]):
        offset = _check_arrays(entry, offset, source, f"layer {i} ({entry.get('name', '?')!r})")
    if offset != header["payload_nbytes"]:
        raise _corrupt(
            source, f"the layers' arrays add up to {offset} bytes, the header's payload_nbytes says "
            f"{header['payload_nbytes']}"
        )
    problem = _check_chain([tuple(entry["shape"]) for entry in header["layers"]])
    if problem:
        raise _corrupt(source, f"the layers do not chain: {problem}")


def _array(payload: memoryview, entry: dict, key: str) -> np.ndarray:
    record = entry["arrays"][key]
    dtype = np.dtype(record["dtype"])
    return np.frombuffer(payload, dtype, record["nbytes"] // dtype.itemsize, record["offset"])


def _positions(entry: dict, payload: memoryview, source: str, where: str) -> np.ndarray:
    """Flat C-order positions of the kept entries, validated against nnz and the shape."""
    rows, cols = entry["shape"]
    nnz = entry["nnz"]
    if entry["encoding"] == "dense":
        return np.arange(rows * cols)
    if entry["encoding"] == "bitmap":
        packed = _array(payload, entry, "bitmap")
        bits = np.unpackbits(packed)
        if bits[rows * cols:].any():
            raise _corrupt(source, f"{where}'s bitmap has bits set past its {rows}x{cols} entries")
        popcount = int(np.count_nonzero(bits))
        if popcount != nnz:
            raise _corrupt(source, f"{where}'s bitmap popcount is {popcount}, but nnz is {nnz}")
        return np.flatnonzero(bits)
    indptr = _array(payload, entry, "indptr").astype(np.int64)
    if indptr[0] != 0 or (np.diff(indptr) < 0).any():
        raise _corrupt(source, f"{where}'s row pointer does not start at 0 and is not non-decreasing")
    if indptr[-1] != nnz:
        raise _corrupt(source, f"{where}'s row pointer does not end at nnz: it ends at {indptr[-1]}, nnz is {nnz}")
    indices = _array(payload, entry, "indices").astype(np.int64)
    if nnz and indices.max() >= cols:
        raise _corrupt(source, f"{where} has column index {indices.max()} out of range for {cols} outputs")
    positions = np.repeat(np.arange(rows, dtype=np.int64), np.diff(indptr)) * cols + indices
    if (np.diff(positions) <= 0).any():
        raise _corrupt(source, f"{where}'s column indices are not strictly increasing within each row")
    return positions


def _check_checksum(blob: memoryview, end: int, source: str) -> None:
    """The SHA-256 of ``blob[:end]`` must equal the trailer ``blob[end:]``."""
    stored = bytes(blob[end:end + DIGEST_SIZE])
    computed = hashlib.sha256(blob[:end]).digest()
    if stored != computed:
        n = 16  # hex digits shown: enough to tell the two apart
        while stored.hex()[:n] == computed.hex()[:n]:
            n += 16
        short = lambda digest: digest.hex()[:n] + ("..." if n < 2 * DIGEST_SIZE else "")  # noqa: E731
        raise SparseFormatError(
            f"{source} fails its SHA-256 checksum: the file ends with {short(stored)}, but its contents "
            f"hash to {short(computed)}, so the file was damaged after it was written (a disk or copy "
            f"error, or an edit of its header or weights). Re-run the step that wrote it: for a run of a study, "
            f"delete that run's directory and rerun the study (only the missing run is trained again), or "
            f"rerun the study with --overwrite; otherwise re-save the model with save_sparse."
        )


def _decode_layer(entry: dict, payload: memoryview, source: str, where: str) -> SparseLayer:
    shape = tuple(entry["shape"])
    positions = _positions(entry, payload, source, where)
    try:
        bits = np.zeros(shape, dtype=np.uint32)
        mask = np.zeros(shape, dtype=np.float32) if entry["has_mask"] else None
    except (MemoryError, ValueError):
        raise _corrupt(source, f"{where} has shape {list(shape)}, too large to allocate") from None
    bits.ravel()[positions] = _array(payload, entry, "values")
    if mask is not None:
        mask.ravel()[positions] = 1.0
    return SparseLayer(name=entry["name"], kernel=bits.view(np.float32), mask=mask, relu=entry["relu"])


def decode(blob: bytes, source: str = "<bytes>") -> tuple[list[SparseLayer], dict]:
    """(layers, meta) from file bytes; ``source`` names the file in error messages."""
    blob = memoryview(blob).cast("B")
    version, header_len = _read_preamble(blob, source)
    header = _parse_header(blob, header_len, source)
    _check_header(header, version, source)
    _check_layout(header, source)
    start = PREAMBLE_END + header_len
    end = start + header["payload_nbytes"]
    checksum = version >= CHECKSUM_SINCE
    total = end + (DIGEST_SIZE if checksum else 0)
    if len(blob) < end:
        raise _truncated(source, "payload", len(blob), total)
    if len(blob) < total:
        raise _truncated(source, "checksum trailer", len(blob), total)
    if len(blob) > total:
        last = "checksum trailer" if checksum else "payload"
        raise _corrupt(
            source, f"{len(blob) - total} trailing bytes follow the {last} (it ends at byte {total}); the file "
            f"was probably appended to or concatenated with another one"
        )
    if checksum:
        _check_checksum(blob, end, source)
    payload = blob[start:end]
    layers = [
        _decode_layer(entry, payload, source, f"layer {i} ({entry['name']!r})")
        for i, entry in enumerate(header["layers"])
    ]
    return layers, header["meta"]


def load_sparse(path: str | Path) -> tuple[list[SparseLayer], dict]:
    """(layers, meta) from a file written by save_sparse; every failure is a SparseFormatError.

    ``layers`` holds one entry per layer with its ``kernel``, ``mask`` and ``relu``, bit for bit as stored.

    Use::

        layers, meta = pruning.load_sparse("model.sparse")
        engine = pruning.SparseMLP([l.kernel for l in layers], [l.relu for l in layers])
    """
    path = Path(path)
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        raise SparseFormatError(
            f"{path} does not exist: no sparse model was saved there. Check the path, or re-run the "
            f"step that writes it (save_sparse)."
        ) from None
    except OSError as e:
        raise SparseFormatError(f"{path} cannot be read ({e.strerror or e}). Check the path and its permissions.") from None
    return decode(blob, source=str(path))

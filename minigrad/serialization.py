"""Saving and loading tensors in the safetensors format, written and read by our own code.

A safetensors file is

    [8 bytes: N, little-endian uint64] [N bytes: JSON header, padded with spaces to a multiple of 8]
    [data: each tensor's bytes, row-major, little-endian, back to back]

and the header maps each name to {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}
(offsets into the data section), plus an optional "__metadata__" dict of string -> string.
Files we write load with the `safetensors` library and the other way round.

    save_file(tensors, path, metadata=None)   flat dict name -> Tensor / NumPy array
    load_file(path, device="cpu")             -> dict name -> Tensor
    load_numpy_file(path)                     -> dict name -> NumPy array (bf16 as float32)
    read_metadata(path)                       -> the "__metadata__" dict
    save(obj, path) / load(path, device=None) any nesting of dicts/lists of Tensors and plain
                                              values (a model + optimizer checkpoint)

Writes are atomic: a temp file in the same directory, fsync, then os.replace, so a crash never
leaves a half-written checkpoint under the real name. Reads validate the header and every
offset and raise `SafetensorsError` saying what is wrong (truncated file, bad JSON, ...). A file is
read only when it is a regular file (a FIFO or device would block or never end), its header
JSON has no duplicate keys and no absurd nesting, and the tensors' offsets tile the data
section exactly (no gaps, no overlap, no trailing bytes), as the `safetensors` library demands.

bfloat16 has no NumPy dtype: it is stored as its 16 raw bits and read back into float32 by a
16-bit shift. On the NumPy backend (no bf16/fp16 arrays) such tensors load as float32.
Not here: memory-mapped lazy loading, F8 dtypes, and unsigned 64-bit integers.
"""
from __future__ import annotations

import json
import math
import os
import stat
import struct
import tempfile
from typing import Any, Optional

import numpy as np

from .tensor import Tensor, get_default_device

# safetensors dtype -> (NumPy dtype of the stored bytes, minigrad dtype it loads as)
_FORMAT = {
    "F64": ("<f8", "float64"), "F32": ("<f4", "float32"), "F16": ("<f2", "float16"),
    "BF16": ("<u2", "bfloat16"), "I64": ("<i8", "int64"), "I32": ("<i4", "int64"),
    "I16": ("<i2", "int64"), "I8": ("i1", "int64"), "U32": ("<u4", "int64"),
    "U16": ("<u2", "int64"), "U8": ("u1", "int64"), "BOOL": ("?", "bool"),
}
_NUMPY_TO_FORMAT = {("f", 8): "F64", ("f", 4): "F32", ("f", 2): "F16", ("i", 8): "I64",
                    ("i", 4): "I32", ("i", 2): "I16", ("i", 1): "I8", ("u", 4): "U32",
                    ("u", 2): "U16", ("u", 1): "U8", ("b", 1): "BOOL"}
_MAX_HEADER = 100 * 1024 * 1024          # the safetensors library's own limit
_MAX_DIMS = 64                           # NumPy's limit on an array's number of dimensions
_MAX_ELEMENTS = 2 ** 62                  # beyond this no array index fits in 64 bits
_TREE_KEY = "minigrad.tree"              # __metadata__ entry describing a nested save()


class SafetensorsError(ValueError):
    """A file that is not a valid safetensors file (or a value that cannot be stored in one)."""


def _c_array(a, dtype) -> np.ndarray:
    """a as a C-contiguous array of dtype (0-d stays 0-d, unlike np.ascontiguousarray)."""
    return np.array(a, dtype=np.dtype(dtype), order="C", copy=None)


# ---------------------------------------------------------------------------- bfloat16 bits
def float32_to_bfloat16_bits(a: np.ndarray) -> np.ndarray:
    """Round float32 values to bfloat16 (nearest, ties to even) and return the uint16 bit patterns."""
    u = _c_array(a, np.float32).view(np.uint32)
    rounded = (u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)
    bits = rounded.astype(np.uint16)
    return np.where(np.isnan(a), np.uint16(0x7FC0), bits).astype(np.uint16)


def bfloat16_bits_to_float32(bits: np.ndarray) -> np.ndarray:
    """uint16 bfloat16 bit patterns -> float32 (exact: bf16 is the top half of a float32)."""
    return (bits.astype(np.uint32) << np.uint32(16)).view(np.float32)


# ---------------------------------------------------------------------------- writing
def _encode(name: str, value) -> tuple[str, np.ndarray]:
    """(safetensors dtype, little-endian contiguous array of the bytes to store)."""
    if isinstance(value, Tensor):
        arr = value.numpy()
        if value.dtype == "bfloat16":
            return "BF16", float32_to_bfloat16_bits(arr)
        if value.dtype == "float16":
            return "F16", _c_array(arr, "<f2")
    elif isinstance(value, np.ndarray):
        arr = value
    else:
        raise SafetensorsError(f"cannot save '{name}': expected a Tensor or NumPy array, got "
                               f"{type(value).__name__}")
    fmt = _NUMPY_TO_FORMAT.get((arr.dtype.kind, arr.dtype.itemsize))
    if fmt is None:
        raise SafetensorsError(f"cannot save '{name}': NumPy dtype {arr.dtype} has no safetensors "
                               f"equivalent here (supported: {sorted(_FORMAT)})")
    return fmt, _c_array(arr, _FORMAT[fmt][0])


def _write(f, tensors: dict, metadata: Optional[dict]) -> None:
    header: dict[str, Any] = {}
    if metadata:
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise SafetensorsError(f"metadata must map strings to strings; got {k!r}: "
                                       f"{type(v).__name__}")
        header["__metadata__"] = dict(metadata)
    arrays, offset = [], 0
    for name, value in tensors.items():
        if not isinstance(name, str) or name == "__metadata__":
            raise SafetensorsError(f"tensor names must be strings other than '__metadata__', "
                                   f"got {name!r}")
        fmt, arr = _encode(name, value)
        header[name] = {"dtype": fmt, "shape": list(arr.shape),
                        "data_offsets": [offset, offset + arr.nbytes]}
        offset += arr.nbytes
        arrays.append(arr)
    raw = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    raw += b" " * (-(8 + len(raw)) % 8)           # the data section starts 8-byte aligned
    f.write(struct.pack("<Q", len(raw)))
    f.write(raw)
    for arr in arrays:
        if arr.nbytes:
            f.write(memoryview(arr.reshape(-1)).cast("B"))


def atomic_write(path, write_fn) -> None:
    """Write to a temp file next to `path`, fsync, then rename over it (atomic on POSIX)."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp",
                               dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            write_fn(f)
            f.flush()
            os.fsync(f.fileno())
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)                 # mkstemp makes 0600; use the usual mode
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def save_file(tensors: dict, filename, metadata: Optional[dict] = None) -> None:
    """Write a flat dict name -> Tensor/NumPy array as a safetensors file (atomically).

    Tensors on any device are copied to the host; bfloat16 is stored as BF16, float16 as F16.
    metadata: optional dict of string -> string stored in the header's __metadata__.
    """
    if not isinstance(tensors, dict):
        raise TypeError(f"save_file expects a dict of name -> tensor, got {type(tensors).__name__}")
    atomic_write(filename, lambda f: _write(f, tensors, metadata))


# ---------------------------------------------------------------------------- reading
def _open_regular(filename):
    """open(filename, "rb"), refusing anything that is not a regular file.

    Reading a FIFO blocks until someone writes to it and a device such as /dev/zero never ends,
    so a hostile path could hang a run: stat first, then open without blocking and check the
    opened file again (the path could be swapped between the two)."""
    kind = _not_regular(os.stat(filename).st_mode)
    fd = None
    if kind is None:
        fd = os.open(filename, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
        kind = _not_regular(os.fstat(fd).st_mode)
    if kind is not None:
        if fd is not None:
            os.close(fd)
        raise SafetensorsError(f"{filename}: is {kind}, not a regular file; expected a safetensors file")
    return os.fdopen(fd, "rb")


def _not_regular(mode: int) -> Optional[str]:
    """None for a regular file, else what it is in words."""
    if stat.S_ISREG(mode):
        return None
    for test, what in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return what
    return "a special file"


def _no_duplicate_keys(pairs: list) -> dict:
    """json object_pairs_hook: a repeated key would silently keep only its last value, so two
    entries could describe the same tensor differently to different readers."""
    out = {}
    for k, v in pairs:
        if k in out:
            raise SafetensorsError(f"duplicate key {k!r} in the header JSON (each name must appear once)")
        out[k] = v
    return out


def _parse_json(raw: bytes, filename, what: str):
    """json.loads with duplicate keys and too-deep nesting reported as SafetensorsError."""
    try:
        return json.loads(raw, object_pairs_hook=_no_duplicate_keys)
    except SafetensorsError as e:
        raise SafetensorsError(f"{filename}: {what}: {e}") from None
    except RecursionError:
        raise SafetensorsError(f"{filename}: {what} is nested too deeply to be a safetensors "
                               "header (expected a flat object of tensor entries)") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SafetensorsError(f"{filename}: {what} is not valid UTF-8 JSON ({e})") from None


def _is_int(v) -> bool:
    return type(v) is int              # bool is an int subclass, but True is not a dimension


def _check_tiling(spans: list, data_len: int, filename) -> None:
    """The tensors' [begin, end) spans must cover the data section exactly, in order: bytes no
    tensor owns could hide anything, and overlapping tensors alias each other."""
    cursor, prev = 0, None
    for begin, end, name in sorted(spans):
        if begin < cursor:
            raise SafetensorsError(f"{filename}: tensors '{prev}' and '{name}' overlap in the file "
                                   f"('{name}' starts at byte {begin}, before '{prev}' ends at {cursor})")
        if begin > cursor:
            raise SafetensorsError(f"{filename}: data bytes {cursor}..{begin} belong to no tensor "
                                   "(expected each tensor to start where the previous one ends)")
        cursor, prev = end, name
    if cursor != data_len:
        raise SafetensorsError(f"{filename}: {data_len - cursor} trailing data bytes after the last "
                               f"tensor (the tensors cover {cursor} of {data_len} bytes)")


def _read_header(f, filename) -> tuple[dict, dict, int]:
    """Validated (entries, metadata, data_start) of an open file."""
    size = os.fstat(f.fileno()).st_size
    if size < 8:
        raise SafetensorsError(f"{filename}: {size} bytes is too short for a safetensors file "
                               "(it starts with an 8-byte header length); truncated?")
    (n,) = struct.unpack("<Q", f.read(8))
    if n > _MAX_HEADER:
        raise SafetensorsError(f"{filename}: header length {n} is larger than the {_MAX_HEADER} "
                               "byte limit: not a safetensors file, or corrupt")
    if n > size - 8:
        raise SafetensorsError(f"{filename}: header length {n} runs past the end of the file "
                               f"({size} bytes): the file is truncated or not a safetensors file")
    header = _parse_json(f.read(n), filename, "the header")
    if not isinstance(header, dict):
        raise SafetensorsError(f"{filename}: the header must be a JSON object, got "
                               f"{type(header).__name__}")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                 for k, v in metadata.items()):
        raise SafetensorsError(f"{filename}: __metadata__ must map strings to strings")
    data_len = size - 8 - n
    spans = []
    for name, e in header.items():
        where = f"{filename}: tensor '{name}'"
        if not isinstance(e, dict) or not {"dtype", "shape", "data_offsets"} <= set(e):
            raise SafetensorsError(f"{where}: entry must have dtype, shape and data_offsets, "
                                   f"got {e!r}")
        if not isinstance(e["dtype"], str) or e["dtype"] not in _FORMAT:
            raise SafetensorsError(f"{where}: unsupported dtype {e['dtype']!r} (supported: "
                                   f"{sorted(_FORMAT)})")
        shape, offs = e["shape"], e["data_offsets"]
        if not isinstance(shape, list) or not all(_is_int(s) and s >= 0 for s in shape):
            raise SafetensorsError(f"{where}: shape must be a list of non-negative ints, got {shape!r}")
        if len(shape) > _MAX_DIMS:
            raise SafetensorsError(f"{where}: {len(shape)} dimensions, more than the {_MAX_DIMS} an array "
                                   "can have: the file is corrupt")
        if math.prod(max(s, 1) for s in shape) > _MAX_ELEMENTS:
            raise SafetensorsError(f"{where}: shape {shape} has more elements than any array can "
                                   "hold: the file is corrupt")
        if not (isinstance(offs, list) and len(offs) == 2 and all(_is_int(o) for o in offs)):
            raise SafetensorsError(f"{where}: data_offsets must be [begin, end], got {offs!r}")
        begin, end = offs
        if not 0 <= begin <= end:
            raise SafetensorsError(f"{where}: invalid data_offsets {offs}")
        if end > data_len:
            raise SafetensorsError(f"{where}: data_offsets {offs} run past the end of the data "
                                   f"({data_len} bytes): the file is truncated or corrupt")
        expected = math.prod(shape) * np.dtype(_FORMAT[e["dtype"]][0]).itemsize
        if end - begin != expected:
            raise SafetensorsError(f"{where}: {end - begin} bytes for shape {shape} of "
                                   f"{e['dtype']} (expected {expected})")
        spans.append((begin, end, name))
    _check_tiling(spans, data_len, filename)
    return header, metadata, 8 + n


def _physical_memory() -> Optional[int]:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):      # not known on this platform
        return None


def _read_array(f, start: int, e: dict, where: str, ram: Optional[int]) -> np.ndarray:
    """Raw stored values: bf16 as float32, ints as stored, float16 as float16.

    A tensor larger than this machine's memory is refused before reading it (a real file of
    that size exists, but loading it would only end in a swap storm or the OOM killer)."""
    begin, end = e["data_offsets"]
    if ram is not None and end - begin > ram:
        raise MemoryError(f"{where}: shape {e['shape']} of {e['dtype']} needs {(end - begin) / 2**30:,.1f} "
                          f"GiB, more than this machine's {ram / 2**30:,.1f} GiB of memory")
    f.seek(start + begin)
    try:
        buf = f.read(end - begin)
    except MemoryError:
        raise MemoryError(f"{where}: not enough free memory to read its {(end - begin) / 2**30:,.1f} GiB "
                          f"(shape {e['shape']} of {e['dtype']})") from None
    raw = np.frombuffer(buf, dtype=_FORMAT[e["dtype"]][0]).reshape(e["shape"])
    if e["dtype"] == "BF16":
        return bfloat16_bits_to_float32(raw)
    return raw.astype(raw.dtype.newbyteorder("="), copy=True)      # native order, writable


def _read_file(filename, convert=lambda arr, fmt: arr) -> tuple[dict, dict]:
    """(name -> convert(array, its safetensors dtype), the header's __metadata__)."""
    with _open_regular(filename) as f:
        header, metadata, start = _read_header(f, filename)
        ram = _physical_memory()
        return {name: convert(_read_array(f, start, e, f"{filename}: tensor '{name}'", ram), e["dtype"])
                for name, e in header.items()}, metadata


def load_numpy_file(filename) -> dict:
    """name -> NumPy array (BF16 read into float32 by shifting its bits)."""
    return _read_file(filename)[0]


def read_metadata(filename) -> dict:
    """The header's __metadata__ (string -> string), {} when absent."""
    with _open_regular(filename) as f:
        return _read_header(f, filename)[1]


def _to_tensor(arr: np.ndarray, fmt: str, device) -> Tensor:
    dtype = _FORMAT[fmt][1]
    from .backends import get_backend
    if dtype in ("bfloat16", "float16") and get_backend(device).name == "numpy":
        dtype = "float32"                 # the NumPy backend has no half types: widen (exact)
    if dtype in ("bfloat16", "float16"):
        arr = arr.astype(np.float32)
    elif dtype == "int64":
        arr = arr.astype(np.int64)
    return Tensor(arr, dtype=dtype, device=device)


def load_file(filename, device="cpu") -> dict:
    """name -> Tensor on `device`, in the file's order. BF16/F16 load as bfloat16/float16 on
    the GPU and as float32 on the NumPy backend; integer types load as int64."""
    return _read_file(filename, lambda arr, fmt: _to_tensor(arr, fmt, device))[0]


# ---------------------------------------------------------------------------- nested objects
def _is_flat(obj) -> bool:
    return isinstance(obj, dict) and all(isinstance(k, str) and k != "__metadata__" and
                                         isinstance(v, (Tensor, np.ndarray)) for k, v in obj.items())


def _encode_tree(obj, path: str, tensors: dict, seen: dict):
    """JSON-able description of obj; Tensors/arrays go into `tensors` and are named by path."""
    if isinstance(obj, (Tensor, np.ndarray)):
        key = id(obj.data) if isinstance(obj, Tensor) else id(obj)
        if key in seen:                          # the same array twice (tied weights): store once
            return {"__tensor__": seen[key]}
        name, i = path or "tensor", 1
        while name in tensors:
            name, i = f"{path}#{i}", i + 1
        tensors[name] = obj
        seen[key] = name
        return {"__tensor__": name}
    if isinstance(obj, dict):
        items = []
        for k, v in obj.items():
            if not isinstance(k, (str, int)) or isinstance(k, bool):
                raise TypeError(f"save(): dict keys must be str or int, got {k!r} at '{path}'")
            items.append([k, _encode_tree(v, f"{path}/{k}" if path else str(k), tensors, seen)])
        return {"__dict__": items}
    if isinstance(obj, (list, tuple)):
        tag = "__tuple__" if isinstance(obj, tuple) else "__list__"
        return {tag: [_encode_tree(v, f"{path}/{i}" if path else str(i), tensors, seen)
                      for i, v in enumerate(obj)]}
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"save(): cannot store a {type(obj).__name__} at '{path}' (expected Tensors, "
                    "NumPy arrays, dicts, lists, tuples, numbers, strings or None)")


def _decode_tree(node, tensors: dict):
    if isinstance(node, dict):
        if "__tensor__" in node:
            return tensors[node["__tensor__"]]
        if "__dict__" in node:
            return {k: _decode_tree(v, tensors) for k, v in node["__dict__"]}
        if "__tuple__" in node:
            return tuple(_decode_tree(v, tensors) for v in node["__tuple__"])
        if "__list__" in node:
            return [_decode_tree(v, tensors) for v in node["__list__"]]
        raise SafetensorsError(f"corrupt {_TREE_KEY} entry: {node!r}")
    return node


def save(obj, path, metadata: Optional[dict] = None) -> None:
    """Save a checkpoint atomically as one safetensors file.

    A flat dict name -> Tensor (a model's state_dict()) becomes a plain safetensors file any
    safetensors reader can open. Anything nested (e.g. {"model": ..., "optimizer":
    opt.state_dict(), "step": 100}) stores its tensors under path-like names ("optimizer/state/
    0/exp_avg") and its structure and plain values as JSON in __metadata__["minigrad.tree"].
    """
    metadata = dict(metadata or {})
    if _is_flat(obj):
        return save_file(obj, path, metadata)
    tensors: dict = {}
    metadata[_TREE_KEY] = json.dumps(_encode_tree(obj, "", tensors, {}))
    save_file(tensors, path, metadata)


def load(path, device=None):
    """Load what save() wrote (or any safetensors file, as a flat dict) onto `device`
    (default: minigrad's default device)."""
    device = device if device is not None else get_default_device()
    tensors, metadata = _read_file(path, lambda arr, fmt: _to_tensor(arr, fmt, device))
    if _TREE_KEY not in metadata:
        return tensors
    tree = _parse_json(metadata[_TREE_KEY].encode("utf-8"), path, f"the {_TREE_KEY} metadata")
    try:
        return _decode_tree(tree, tensors)
    except RecursionError:
        raise SafetensorsError(f"{path}: {_TREE_KEY} metadata is nested too deeply") from None
    except (KeyError, TypeError, ValueError) as e:
        raise SafetensorsError(f"{path}: {_TREE_KEY} metadata does not match the tensors "
                               f"({type(e).__name__}: {e})") from None


__all__ = ["SafetensorsError", "save_file", "load_file", "load_numpy_file", "read_metadata", "save",
           "load", "float32_to_bfloat16_bits", "bfloat16_bits_to_float32"]

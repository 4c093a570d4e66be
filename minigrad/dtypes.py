"""dtypes: named by strings, as the backend interface names them.

`minigrad.float32 == "float32"`, so `dtype=minigrad.float32`, `dtype="float32"` and
`dtype=np.float32` all work. Promotion follows torch for the cases minigrad supports:
bool < int64 < float16/bfloat16 < float32 < float64, and float16 with bfloat16 gives float32.
"""
from __future__ import annotations

float32 = "float32"
float64 = "float64"
float16 = "float16"
bfloat16 = "bfloat16"
int64 = "int64"
bool_ = "bool"

FLOATS = (float16, bfloat16, float32, float64)
_RANK = {"bool": 0, "int64": 1, "float16": 2, "bfloat16": 2, "float32": 3, "float64": 4}
NAMES = tuple(_RANK)                # the six canonical names
_ALIASES = {"float": "float32", "double": "float64", "half": "float16", "long": "int64",
            "int": "int64", "int32": "int64", "bf16": "bfloat16", "fp16": "float16",
            "fp32": "float32", "fp64": "float64", "bool_": "bool"}


def canonical(dtype) -> str:
    """Any dtype spelling (str, numpy dtype/type, torch dtype) -> one of the six names."""
    if dtype is None:
        raise TypeError("dtype is None")
    name = getattr(dtype, "__name__", None) or str(dtype)
    name = name.replace("torch.", "").replace("numpy.", "").lower()
    name = _ALIASES.get(name, name)
    if name not in _RANK:
        raise TypeError(f"unsupported dtype {dtype!r}: expected one of {sorted(_RANK)}")
    return name


def is_floating(dtype: str) -> bool:
    return dtype in FLOATS


def promote(a: str, b: str) -> str:
    """The result dtype of a binary op between two tensors of these dtypes."""
    if a == b:
        return a
    if {a, b} == {"float16", "bfloat16"}:
        return "float32"
    return a if _RANK[a] > _RANK[b] else b

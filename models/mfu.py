"""Peak FLOP/s of common GPUs, for the MFU (model FLOPs utilisation) estimate of models/gpt.py.

MFU = achieved model FLOP/s / the device's dense peak. The peaks are datasheet numbers for
dense (not 2:4 sparse) tensor-core math; "float32" means the TF32 tensor-core peak.
"""
from __future__ import annotations

from typing import Optional

import minigrad

# Dense (no sparsity) peak FLOP/s from the vendors' data sheets, by dtype. "float32" is the
# TF32 tensor-core peak where the GPU has one (what minigrad's float32 matmuls may use).
GPU_PEAK_FLOPS: dict[str, dict[str, float]] = {
    "H100 SXM": {"bfloat16": 989e12, "float16": 989e12, "float32": 494.7e12},
    "H100 NVL": {"bfloat16": 835e12, "float16": 835e12, "float32": 417.5e12},
    "H100 PCIe": {"bfloat16": 756e12, "float16": 756e12, "float32": 378e12},
    "H200": {"bfloat16": 989e12, "float16": 989e12, "float32": 494.7e12},
    "A100": {"bfloat16": 312e12, "float16": 312e12, "float32": 156e12},
    "L40S": {"bfloat16": 362e12, "float16": 362e12, "float32": 183e12},
    "L4": {"bfloat16": 121e12, "float16": 121e12, "float32": 60e12},
    "RTX 4090": {"bfloat16": 165.2e12, "float16": 165.2e12, "float32": 82.6e12},
    "RTX 3090": {"bfloat16": 71e12, "float16": 71e12, "float32": 35.6e12},
    "V100": {"float16": 125e12, "float32": 15.7e12},
    "T4": {"float16": 65e12, "float32": 8.1e12},
}


def peak_flops(device_name: Optional[str], dtype: str = "bfloat16") -> Optional[float]:
    """Dense peak FLOP/s of a device from GPU_PEAK_FLOPS (a key matched as a substring of the
    name, longest key first; an H100 that is neither PCIe nor NVL, e.g. "NVIDIA H100 80GB HBM3",
    is the SXM part), or None for CPUs and unknown devices."""
    if not device_name:
        return None
    name = device_name.upper()
    if "H100" in name and not any(k in name for k in ("PCIE", "NVL")):
        name = name + " H100 SXM"                  # "NVIDIA H100 80GB HBM3" is the SXM part
    for key in sorted(GPU_PEAK_FLOPS, key=len, reverse=True):
        if key.upper() in name:
            return GPU_PEAK_FLOPS[key].get(dtype)
    return None


def _peak(device_name: Optional[str], dtype: str, device: str) -> Optional[float]:
    """Peak FLOP/s for estimate_mfu; without a device_name, the backend says what it runs on."""
    if device_name is None and device == "cuda":
        device_name = minigrad.get_backend(device).device_name()
    return peak_flops(device_name, dtype)

"""softmax, log_softmax and cross-entropy of both backends on logits whose exp overflows or
underflows (issue 13: a log-sum-exp without the max shift gives inf/NaN, and no test had
such logits).

The oracle is shift invariance: for logits x = r + c with small integer rows r and a shift c
far outside exp's range (+-100 in float32, +-1000 in float64),
    softmax(x) = softmax(r),  log_softmax(x) = log_softmax(r),  lse(x) = c + lse(r),
    loss_t(x) = lse(r) - r_t,
and the right-hand sides are computed here naively in float64 (exp(r) is harmless).
Both r and r + c are exact in either dtype, so the only error allowed is the rounding of
results of magnitude |c|.
"""
from __future__ import annotations

import numpy as np
import pytest

from backend_testing import cuda_backend  # tests/ is on sys.path
from minigrad.backends import get_backend

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")   # interpreter masked lanes

R = np.array([[0.0, -1.0, -2.0, 3.0, 1.0],
              [2.0, 2.0, 2.0, 2.0, 2.0],
              [-3.0, 0.0, 1.0, -7.0, 5.0]])                           # (N, V)
TARGETS = np.array([3, 1, -100])                                     # the last row is ignored
SHIFT = {"float32": 100.0, "float64": 1000.0}
TOL = {"float32": dict(rtol=1e-5, atol=1e-5), "float64": dict(rtol=1e-12, atol=1e-12)}


def _backend(device):
    return get_backend("cpu") if device == "cpu" else cuda_backend()


def _naive(r):
    """softmax, log_softmax and lse of small rows, straight from the definitions (float64)."""
    e = np.exp(r)
    lse = np.log(e.sum(axis=-1))
    return e / e.sum(axis=-1, keepdims=True), r - lse[:, None], lse


@pytest.mark.parametrize("sign", [1.0, -1.0], ids=["huge", "tiny"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_softmax_family_and_cross_entropy_are_shift_invariant(device, dtype, sign):
    b = _backend(device)
    c = sign * SHIFT[dtype]
    x = b.from_numpy((R + c).astype(dtype), dtype)
    soft, logsoft, lse_r = _naive(R)
    tol = TOL[dtype]

    np.testing.assert_allclose(b.to_numpy(b.softmax_fwd(x)), soft, **tol)
    # log_softmax's values are O(10) here but computed from inputs of size |c|
    np.testing.assert_allclose(b.to_numpy(b.log_softmax_fwd(x)), logsoft,
                               rtol=tol["rtol"], atol=tol["atol"] * abs(c))

    targets = b.from_numpy(TARGETS.astype(np.int64), "int64")
    losses, lse = b.cross_entropy_fwd(x, targets, -100)
    valid = TARGETS != -100
    expected_loss = np.where(valid, lse_r - R[np.arange(3), np.where(valid, TARGETS, 0)], 0.0)
    np.testing.assert_allclose(b.to_numpy(lse), c + lse_r, rtol=tol["rtol"], atol=0)
    np.testing.assert_allclose(b.to_numpy(losses), expected_loss,
                               rtol=tol["rtol"], atol=tol["atol"] * abs(c))

    # dlogits = dloss * (softmax - onehot), from the saved (huge) lse
    dlosses = b.from_numpy(np.full(3, 0.5, dtype=dtype), dtype)
    dx = b.to_numpy(b.cross_entropy_bwd(dlosses, x, targets, lse, -100))
    onehot = np.zeros_like(R)
    onehot[np.arange(3)[valid], TARGETS[valid]] = 1.0
    expected_dx = 0.5 * (soft - onehot) * valid[:, None]
    np.testing.assert_allclose(dx, expected_dx, rtol=tol["rtol"], atol=tol["atol"] * abs(c))

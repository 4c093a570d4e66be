"""Differentiable primitive ops (tier 2 of the backend interface), one Function each.

elementwise.py  unary/binary math, where, clamp, cast
reduce.py       sum, max
movement.py     reshape, permute, expand, slice, index_select, concat, contiguous
matmul.py       batched matrix product
The fused ops (softmax, layer_norm, attention, ...) live in minigrad/nn/fused.py.
"""

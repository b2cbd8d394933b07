"""Where the arrays live: NumPy on the CPU (the default), CuPy on an NVIDIA GPU (`--device cuda`).

The layers are written against NumPy alone, and stay so. CuPy arrays take part in NumPy's dispatch
protocols (__array_ufunc__ and __array_function__, NEP 13 and 18), so `np.maximum(x, 0, out=x)`,
`np.matmul(a, b, out=c)`, `np.zeros_like(x)` or `np.sum(d, axis=0, out=db)` run on the GPU when `x` is a
CuPy array. What does not dispatch, and how the layers avoid it:
  * an array made from a shape: `np.empty_like(x, shape=...)` / `np.zeros_like(x, shape=...)` instead of
    `np.empty(shape)`, so that it is made where `x` lives;
  * a host array (a dropout mask, augmentation's draws) meeting a device array: `like(x, array)` moves
    it first; arrays that never change (an index 0..n-1, a pixel grid) are `constant_like`, moved once;
  * `np.einsum(..., out=...)` (CuPy's einsum takes no `out`): the result is assigned instead;
  * `np.add.at` (unbuffered scatter-add): no layer needs it (col2im and pooling add whole slices);
  * `param[index]` is a 0-d view in CuPy, not a number: the numerical gradient copies it with float().
Everything random is drawn on the host by NumPy's seeded generators (initial weights, shuffling, dropout
masks, augmentation) and moved to the device: the same seed gives the same run on either device, and a
checkpoint (plain NumPy, like model files and metrics) resumes on either.

CuPy is an optional extra (from the checkout: `.venv/bin/python -m pip install -e '.[gpu]'`); this module
imports it only when asked to.
"""

from __future__ import annotations

import sys
from functools import lru_cache

import numpy as np

from .errors import NetworkError

DEVICES = ("cpu", "cuda")
# bp-train is not on PyPI: the extra installs from the checkout, into the project's environment
INSTALL = (
    "from the bp-train checkout: .venv/bin/python -m pip install -e '.[gpu]' (CuPy for CUDA 12; for "
    "CUDA 13: .venv/bin/python -m pip install cupy-cuda13x)"
)


def cuda_module():
    """CuPy, checked to see a GPU; one clear error when CuPy or the GPU is missing."""
    try:
        import cupy
    except ImportError:
        raise NetworkError(f"--device cuda needs CuPy, which is not installed: {INSTALL}") from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CuPy's CUDA errors: no driver, no device
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise NetworkError(
            f"--device cuda: CuPy is installed but finds no usable NVIDIA GPU ({detail[:160]})"
        ) from None
    if count < 1:
        raise NetworkError("--device cuda: CuPy is installed but finds no NVIDIA GPU")
    return cupy


def array_module(device: str):
    """numpy for "cpu", cupy for "cuda"."""
    if device not in DEVICES:
        raise NetworkError(f"unknown device {device!r}; expected one of {', '.join(DEVICES)}")
    return np if device == "cpu" else cuda_module()


def module_of(array):
    """numpy, or cupy for a CuPy array (without importing CuPy when nothing has)."""
    cupy = sys.modules.get("cupy")
    return cupy if cupy is not None and isinstance(array, cupy.ndarray) else np


def to_device(array, xp):
    """`array` on the device of array module `xp` (no copy when it is there already)."""
    return np.asarray(array) if xp is np else xp.asarray(array)


def to_host(array) -> np.ndarray:
    """A NumPy array of `array`, wherever it lives (the same array when it is one already)."""
    xp = module_of(array)
    return np.asarray(array) if xp is np else xp.asnumpy(array)


def like(reference, array):
    """`array` (made on the host) moved to wherever `reference` lives: how the layers bring a dropout mask
    or a row index to the device of their input without asking which device that is."""
    return to_device(array, module_of(reference))


def constant_like(reference, make, *args):
    """The host array `make(*args)` where `reference` lives, for arrays that depend on `args` alone (an
    index 0..n-1, a pixel grid, a smoothing matrix). On a GPU each move is a host-to-device copy, so it is
    made and moved once per device and `args`, then shared: read it, never write into it."""
    return _constant(module_of(reference), make, args)


@lru_cache(maxsize=64)
def _constant(xp, make, args):
    array = to_device(make(*args), xp)
    if xp is np:
        array.flags.writeable = False  # shared, so a write would be a bug (CuPy has no such flag)
    return array


def arange_like(reference, n: int):
    """np.arange(n) where `reference` lives, made once per device (a loss head's row index)."""
    return constant_like(reference, np.arange, n)


def synchronize(xp) -> None:
    """Wait for the GPU's queued work (for timing); nothing on the CPU."""
    if xp is not np:
        xp.cuda.get_current_stream().synchronize()

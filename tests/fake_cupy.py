"""A stand-in for CuPy on the CPU, strict as CuPy is about where arrays live, so that CI (which has no GPU)
still catches the mistakes that break `--device cuda`.

CuPy refuses to mix its arrays with NumPy's: `cupy_array * numpy_array` is a TypeError, not a silent copy.
So a layer that makes an array from a shape with `np.empty(shape)` (on the host) instead of
`np.empty_like(x, shape=...)`, or multiplies by a host mask without `like()`, works on the CPU and fails on
a GPU. `DeviceArray` is an ndarray that refuses the same: any operation (ufunc or NumPy function), index
or assignment that meets a host array of one or more dimensions raises. The module `fake_cupy` has the
part of CuPy's interface that bp_train uses (asarray, asnumpy, zeros, ones, cuda.*); installed as
`sys.modules["cupy"]`, it makes `--device cuda` run on it. Its arithmetic is NumPy's own, so a run on the
fake device must end at exactly the CPU's numbers.

It also counts (`counts`) what the code asks of the device: operations (about one kernel launch each on
a GPU, where at batch 100 their launch time, not their arithmetic, is what a training step costs), copies
to the device, and reads back to the host (each makes the host wait for the GPU). Those are the GPU's costs
that can be seen without one.

What it cannot catch: implicit conversion to a host array (`np.asarray(device_array)`, which CuPy refuses
and an ndarray subclass cannot), and the time anything takes.
"""

from __future__ import annotations

import types
from collections import Counter

import numpy as np

# What the code asked of the device, for counting per training step: "operations" (on a GPU, about one
# kernel launch each), "to device" (host-to-device copies) and "to host" (reads back: asnumpy, float(),
# int(), each one making the host wait for the GPU's queued work).
counts: Counter = Counter()


def _host_arrays(values):
    """The host arrays (plain ndarrays, not 0-d) among `values`, looked for inside lists, tuples and dicts."""
    for value in values:
        if isinstance(value, DeviceArray):
            continue
        if isinstance(value, np.ndarray) and value.ndim > 0:
            yield value
        elif isinstance(value, (list, tuple)):
            yield from _host_arrays(value)
        elif isinstance(value, dict):
            yield from _host_arrays(value.values())


_inside = 0  # > 0 while NumPy's own implementation of a function runs: its inner steps are not ours to check


def _refuse_host(values, operation: str) -> None:
    if _inside:
        return
    for array in _host_arrays(values):
        raise TypeError(
            f"{operation}: a host array of shape {array.shape} met a device array "
            "(CuPy refuses this; move it with backend.like or make it with *_like(x, shape=...))"
        )


def _on_device(result):
    """A result on the device, as CuPy's are; a reduction to one number too (CuPy gives a 0-d array, which
    stays on the GPU until float() or int() reads it)."""
    if isinstance(result, np.generic):
        return np.asarray(result).view(DeviceArray)
    if isinstance(result, np.ndarray) and not isinstance(result, DeviceArray):
        return result.view(DeviceArray)
    if isinstance(result, (list, tuple)):
        return type(result)(_on_device(r) for r in result)
    return result


def _count(what: str) -> None:
    if not _inside:
        counts[what] += 1


def _plain(value):
    return value.view(np.ndarray) if isinstance(value, DeviceArray) else value


class DeviceArray(np.ndarray):
    """An array on the fake device: NumPy's arithmetic, CuPy's refusal to meet host arrays."""

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        _refuse_host(inputs + (out or ()), f"{ufunc.__name__}.{method}")
        _count("operations")
        if out is not None:
            kwargs["out"] = tuple(_plain(a) for a in out)
        result = getattr(ufunc, method)(*(_plain(a) for a in inputs), **kwargs)
        if out is not None:
            return out[0] if len(out) == 1 else out
        return _on_device(result)

    def __array_function__(self, func, types, args, kwargs):
        global _inside
        _refuse_host((args, kwargs), func.__name__)
        _count("operations")
        _inside += 1
        try:
            result = super().__array_function__(func, types, args, kwargs)
        finally:
            _inside -= 1
        return _on_device(result)  # some NumPy functions (einsum, ...) drop the subclass; CuPy's stay on the device

    def __getitem__(self, index):
        parts = index if isinstance(index, tuple) else (index,)
        _refuse_host(parts, "indexing")
        if any(isinstance(part, np.ndarray) for part in parts):
            _count("operations")  # a gather; slices are views, no work
        return super().__getitem__(index)

    def __setitem__(self, index, value):
        _refuse_host((index if isinstance(index, tuple) else (index,), value), "assignment")
        _count("operations")
        super().__setitem__(index, value)

    # Methods that are work on a GPU but neither ufuncs nor NumPy functions here
    def copy(self, *args, **kwargs):
        _count("operations")
        return super().copy(*args, **kwargs)

    def astype(self, dtype, *args, copy=True, **kwargs):
        if copy or np.dtype(dtype) != self.dtype:
            _count("operations")
        return super().astype(dtype, *args, copy=copy, **kwargs)

    def argmax(self, *args, **kwargs):
        _count("operations")
        return super().argmax(*args, **kwargs)

    def __float__(self):
        _count("to host")
        return super().__float__()

    def __int__(self):
        _count("to host")
        return super().__int__()


def asarray(array, dtype=None):
    """To the device: always a new array there, as a host-to-device copy is."""
    if isinstance(array, DeviceArray):
        return array if dtype is None or array.dtype == dtype else array.astype(dtype)
    counts["to device"] += 1
    return np.array(array, dtype=dtype).view(DeviceArray)


def asnumpy(array):
    counts["to host"] += 1
    return np.array(_plain(array))


def module() -> types.ModuleType:
    """A fresh `cupy` module on the fake device."""
    fake = types.ModuleType("cupy")
    fake.__version__ = "fake"
    fake.ndarray = DeviceArray
    fake.asarray = asarray
    fake.asnumpy = asnumpy
    fake.zeros = lambda shape, dtype=float: np.zeros(shape, dtype).view(DeviceArray)
    fake.ones = lambda shape, dtype=float: np.ones(shape, dtype).view(DeviceArray)
    stream = types.SimpleNamespace(synchronize=lambda: None)
    fake.cuda = types.SimpleNamespace(
        runtime=types.SimpleNamespace(
            getDeviceCount=lambda: 1, getDeviceProperties=lambda index: {"name": b"fake device"}
        ),
        get_current_stream=lambda: stream,
    )
    return fake

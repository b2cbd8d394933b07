"""Many arrays as views of one vector: how the network keeps its parameters, and their gradients.

The network's parameters (W1, b1, W2, ...) are separate arrays to the layers, which multiply by W and add
b. To an optimizer they are all the same: every step is elementwise (w <- w - lr * g, Adam's moments, ...),
so it may as well run over one long vector holding all of them. The network therefore lays its
parameters end to end in one 1-D array and hands each layer a view of its part (W1 is
`vector[0:784*100].reshape(784, 100)`); the gradients dW1, db1, ... are views of a second vector, laid out
the same way. Writing into a view writes into the vector, and the other way round: nothing is copied.

Why bother: an Adam step is twelve array operations. Per parameter array that is twelve times the
number of arrays (96 for configs/cnn.yaml's 8); over the vector it is twelve. On the CPU the arithmetic,
and so every result, is the same either way. On a GPU each array operation is one kernel launch, tens of
microseconds of Python and driver time however small the array: stepping array by array, Adam took
1.9 ms of a 6 ms training step of cnn.yaml on an H100.
"""

from __future__ import annotations

import math

import numpy as np


def views(vector, shapes: dict[str, tuple]) -> dict:
    """{key: the part of `vector` for key, reshaped to its shape}, the parts end to end in dict order."""
    parts, start = {}, 0
    for key, shape in shapes.items():
        stop = start + math.prod(shape)
        parts[key] = vector[start:stop].reshape(shape)
        start = stop
    if start != vector.size:
        raise ValueError(f"the shapes hold {start} numbers but the vector has {vector.size}")
    return parts


def pack(arrays: dict) -> tuple:
    """(vector, views): one new vector holding `arrays` end to end (same dtype, same device), and its
    views shaped as the arrays were. The caller uses the views in place of the arrays from then on."""
    first = next(iter(arrays.values()))
    vector = np.empty_like(first, shape=sum(a.size for a in arrays.values()))  # where `first` lives
    parts = views(vector, {key: a.shape for key, a in arrays.items()})
    for key, array in arrays.items():
        parts[key][...] = array
    return vector, parts

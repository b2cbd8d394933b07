"""Reading a person's own digits: pictures prepared as MNIST's were (data/images.py), read by a trained
network, with the pixels that pushed it to its answer (the saliency: backprop down to the input)."""

from __future__ import annotations

import numpy as np

from ..data.digits import to_float
from ..data.images import Prepared
from ..errors import DataError


def check_fits(network, source: str) -> None:
    """A model that reads 28x28 one-channel digits: what a picture is made into."""
    if network.sizes[0] != 784 or list(network.input_shape) not in ([1, 28, 28], [1, 784, 1]):
        raise DataError(f"{source}: the model reads {network.sizes[0]} values per digit, not a 28x28 picture")


def recognize(model, prepared: list[Prepared], saliency: bool = False) -> list[dict]:
    """Per picture: file, label, probabilities (10), the 28x28 input (0..1) and, if asked, the saliency
    map, d(winning score)/d(pixel) scaled to -1..1. `model` is a voting.Ensemble (one network or more)."""
    x = to_float(np.stack([p.pixels.reshape(-1) for p in prepared]).round().astype(np.uint8), model.network.dtype)
    probabilities = model.probabilities(x)
    results = []
    for i, item in enumerate(prepared):
        label = int(probabilities[i].argmax())
        result = {
            "file": item.source,
            "label": label,
            "probabilities": probabilities[i].round(6).tolist(),
            "notes": item.notes,
            "input": x[i].reshape(28, 28).round(4).tolist(),
        }
        if saliency:
            gradient = model.score_gradient(x[i : i + 1], label).reshape(28, 28).astype(np.float64)
            top = np.abs(gradient).max()
            result["saliency"] = (gradient / top if top > 0 else gradient).round(4).tolist()
        results.append(result)
    return results


def describe(result: dict) -> str:
    """'seven.png: 7 (0.981), then 1 (0.012)'."""
    ranked = np.argsort(result["probabilities"])[::-1]
    first, second = int(ranked[0]), int(ranked[1])
    notes = f"  [{'; '.join(result['notes'])}]" if result["notes"] else ""
    return (
        f"{result['file']}: {first} ({result['probabilities'][first]:.3f}), then {second} "
        f"({result['probabilities'][second]:.3f}){notes}"
    )

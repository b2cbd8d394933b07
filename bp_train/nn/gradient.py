"""Numerical differentiation: the slow, obviously-correct gradient that backprop is checked against.

For each entry w of a parameter, the central difference

    dL/dw  ~  (L(w + h) - L(w - h)) / 2h

has error of order h^2, against order h for the one-sided difference. It costs two full forward passes
per entry -- for a 784-100-10 network, 159,010 entries, so 318,020 forward passes for one gradient.
That cost is the whole argument for backpropagation.

Only float64 gives meaningful answers: with float32's 7 digits, L(w + h) - L(w - h) for h ~ 1e-5 is mostly
rounding noise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from .backend import like, to_device, to_host
from .errors import NetworkError

DEFAULT_H = 1e-5


def require_float64(array: np.ndarray, what: str = "numerical gradient") -> None:
    if array.dtype != np.float64:
        raise NetworkError(
            f"{what} needs float64 parameters, got {array.dtype}: in float32 the central "
            "difference (L(w+h) - L(w-h)) / 2h is rounding noise (relative errors near 1)"
        )


def numerical_gradient(
    loss: Callable[[], float | tuple[float, ...]],
    param: np.ndarray,
    h: float = DEFAULT_H,
    indices: Iterable[tuple] | None = None,
    progress=None,
    decisions: Callable[[], bytes] | None = None,
    crossed: list | None = None,
) -> np.ndarray:
    """Central-difference gradient of `loss()` with respect to every entry of `param` (or only `indices`).

    `param` is perturbed in place, one entry at a time, and each entry is restored exactly afterwards;
    `loss` is a function of no arguments that reads `param` through the network. Entries not in `indices`
    are left at 0 in the result. `progress`, if given, is called once per entry (a tqdm `update`).

    `loss` may return a tuple of terms (cross-entropy, weight penalty): each term is differenced on its
    own and the differences added. Mathematically the same, but a penalty's change of 1e-14 added to a loss
    of 2.3 first would be rounded away (float64 resolves 2.3 only to about 4e-16).

    With `decisions` (a function saying which way every ReLU and max pool went in the last forward pass),
    an entry whose +h and -h passes went different ways straddles a kink, where the loss has no
    derivative and the difference means nothing: its index is appended to `crossed`.
    """
    require_float64(param)
    grad = np.zeros_like(param)
    for index in np.ndindex(param.shape) if indices is None else indices:
        original = float(param[index])  # a number: CuPy's param[index] is a view that the next line would move
        param[index] = original + h
        loss_plus = np.atleast_1d(loss())
        went_plus = decisions() if decisions is not None else None
        param[index] = original - h
        loss_minus = np.atleast_1d(loss())
        if decisions is not None and decisions() != went_plus:
            crossed.append(index)
        param[index] = original
        grad[index] = np.sum((loss_plus - loss_minus) / (2 * h))
        if progress is not None:
            progress(1)
    return grad


def relative_error(analytic: np.ndarray, numeric: np.ndarray) -> np.ndarray:
    """|a - n| / max(1e-8, |a| + |n|), entry by entry: scale-free, and 0/0 cannot happen."""
    return np.abs(analytic - numeric) / np.maximum(1e-8, np.abs(analytic) + np.abs(numeric))


def parameter_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """The same formula for a whole parameter, |.| being the Euclidean norm: one figure per parameter.

    Why not the largest entry-wise error? Central differences carry an absolute noise of about
    ulp(loss) / 2h ~ 2e-11 in float64. Entries whose true gradient is itself tiny -- a faint pixel's
    weight, or weight decay on a weight near 0 -- then show entry-wise errors of 1e-5 even when backprop
    is exact. The norm weighs every entry by its size, so noise stays near 1e-10 while a real bug in any
    layer (a missing factor, a wrong transpose) moves the whole array and scores 1e-2 or worse.
    """
    return float(np.linalg.norm(analytic - numeric) / max(1e-8, np.linalg.norm(analytic) + np.linalg.norm(numeric)))


# --- the gradient check ----------------------------------------------------------------------------------

DEFAULT_TOLERANCE = 1e-6
KINK_MARGIN = 10  # in units of h: a ReLU input closer than 10 h to 0 could be pushed across the kink


def kink_margins(network, x: np.ndarray) -> np.ndarray:
    """Per sample, the smallest |input| of any ReLU in a training-mode forward pass: how close the sample
    sits to a kink, where the loss is not differentiable and central differences are meaningless."""
    from .conv import Pooling, im2col
    from .layers import ReLU

    network.set_flag("train", True)
    margins = np.full(len(x), np.inf)
    out = to_device(x, network.xp)
    for layer in network.layers.values():
        if isinstance(layer, ReLU):
            margins = np.minimum(margins, to_host(np.abs(out).reshape(len(x), -1).min(axis=1)))
        if isinstance(layer, Pooling):
            # max pooling has a kink where a window's two largest values meet; exact ties (blank areas,
            # dead ReLUs) move together under any perturbation and do no harm, so only near ties count
            windows = im2col(out, layer.size, layer.size, layer.stride, 0)
            windows = windows.reshape(len(x), -1, layer.size * layer.size, windows.shape[-1])
            top2 = np.partition(windows, -2, axis=2)[:, :, -2:, :]
            gaps = (top2[:, :, 1] - top2[:, :, 0]).reshape(len(x), -1)
            margins = np.minimum(margins, to_host(np.where(gaps > 0, gaps, np.inf).min(axis=1)))
        out = layer.forward(out)
    return margins


def sample_indices(params: dict, entries: int | None, rng: np.random.Generator) -> dict | None:
    """Up to `entries` random entries of each parameter (None: all of them)."""
    if entries is None:
        return None
    return {
        key: [
            np.unravel_index(i, p.shape) for i in np.sort(rng.choice(p.size, size=min(entries, p.size), replace=False))
        ]
        for key, p in params.items()
    }


def compared_row(key: str, analytic, numeric, indices, crossed: list, tol: float) -> dict:
    """One parameter's line of the check: its relative error over the entries compared (the sampled
    ones, less those whose +-h straddled a kink, where there is no derivative to compare with)."""
    a, n = to_host(analytic), to_host(numeric)  # compared on the host (no copy on the CPU)
    shape = list(a.shape)
    compared = np.ones(a.shape, dtype=bool)
    if indices is not None:  # the sampled entries only
        compared[...] = False
        compared[tuple(np.array(indices).T)] = True
    for index in crossed:
        compared[index] = False
    a, n = a[compared], n[compared]
    error = parameter_error(a, n)
    return {
        "param": key,
        "shape": shape,
        "checked": int(a.size),
        "kinks": len(crossed),
        "rel_error": error,
        "max_entry_rel_error": float(relative_error(a, n).max()),
        "mean_abs_diff": float(np.mean(np.abs(a - n))),
        "passed": error < tol,
    }


def gradcheck(
    network,
    x: np.ndarray,
    t: np.ndarray,
    batch: int = 4,
    tol: float = DEFAULT_TOLERANCE,
    h: float = DEFAULT_H,
    entries: int | None = None,
    seed: int = 0,
    progress=None,
) -> dict:
    """Compare backprop with central differences for every parameter of a float64 network.

    `x`, `t` are candidate rows: the first `batch` of them are used, except that rows with a ReLU input
    within KINK_MARGIN * h of 0 are replaced by later candidates (and counted), so a check never fails
    merely because +-h crossed a kink, where the loss has no derivative. Dropout masks are drawn once and
    frozen; BatchNorm's running averages are left untouched. With `entries`, only that many random
    entries of each parameter are differenced (a large network has millions).
    """
    require_float64(next(iter(network.params.values())), "gradcheck")
    x = np.asarray(x, dtype=np.float64)
    rng = np.random.default_rng([seed, 5])
    # A convolution's biases start at 0, which puts every blank patch exactly on ReLU's kink (its input
    # is then exactly the bias). Any point will do for checking a gradient: move them off 0.
    from .conv import Convolution

    for layer in network.layers.values():
        if isinstance(layer, Convolution) and layer.b is not None:
            layer.b += like(layer.b, 0.05 * rng.standard_normal(layer.b.shape))
    chosen, spare = list(range(min(batch, len(x)))), list(range(batch, len(x)))
    dropped = 0
    with network.frozen():
        for _ in range(20):  # replacing a row changes batch statistics and masks: look again
            near = kink_margins(network, x[chosen]) < KINK_MARGIN * h
            if not near.any() or len(spare) < near.sum():
                break
            dropped += int(near.sum())
            chosen = [row for row, bad in zip(chosen, near) if not bad] + [spare.pop(0) for _ in range(near.sum())]
        xb, tb = x[chosen], t[chosen]
        analytic = {k: g.copy() for k, g in network.gradient(xb, tb).items()}
        indices = sample_indices(network.params, entries, rng)
        crossed = {key: [] for key in network.params}
        numeric = network.numerical_gradient(
            xb, tb, h=h, keep_masks=True, indices=indices, progress=progress, crossed=crossed
        )
    rows = [
        compared_row(key, a, numeric[key], indices and indices[key], crossed[key], tol) for key, a in analytic.items()
    ]
    return {
        "passed": all(r["passed"] for r in rows),
        "tolerance": tol,
        "h": h,
        "batch": len(chosen),
        "replaced_near_kink": dropped,
        "kinks_crossed": sum(r["kinks"] for r in rows),
        "params": rows,
    }

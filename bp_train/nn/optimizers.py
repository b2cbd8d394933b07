"""Optimizers and learning-rate schedules.

Each optimizer has `update(params, grads)`, which moves the parameter arrays in place (the layers hold
the same arrays) and leaves `grads` as they were, and keeps its per-parameter state (velocities,
squared-gradient averages) in dicts created lazily on the first update. `state()` / `load_state()` let a
run be resumed exactly. The docstrings give the plain formulas.

The training loop takes a second, named path: `update_vectors(params, vectors)` steps over all
parameters at once, laid end to end in one vector as a Network keeps them (vectors.py), and uses the
gradient vector as scratch space. The updates are memory-bound (a few passes over every parameter), so
`step` is written with in-place operations that spend its `grad`: that saves allocating and filling a
temporary the size of the network on every step. `update` therefore hands `step` a copy.
"""

from __future__ import annotations

import inspect
import math

import numpy as np

from .backend import like, to_host
from .vectors import views


class Optimizer:
    slots: tuple[str, ...] = ()  # names of the per-parameter state arrays, passed to `step` in this order
    typical_lr: tuple[float, float] = (1e-4, 1.0)  # the range of learning rates that usually works

    def __init__(self, lr: float):
        self.lr = lr
        self.steps = 0
        self.slot: dict[str, dict[str, np.ndarray]] = {name: {} for name in self.slots}
        self.slot_vector: dict[str, np.ndarray] = {}  # with vectors: each slot's one vector, slot[name] views of it
        self.placed = False

    def _place(self, params, vectors):
        """Slots beside their parameters: zeros at the start, or a resumed run's (host) arrays moved to the
        parameters' device. With `vectors`, each slot is one vector laid out as the parameters' and
        slot[name][key] are views of it. Done once, on the first update."""
        shapes = {key: p.shape for key, p in params.items()}
        for name in self.slots:
            saved = self.slot[name]
            if vectors is None:
                arrays = {key: np.zeros_like(p) for key, p in params.items()}
            else:
                self.slot_vector[name] = np.zeros_like(vectors[0])
                arrays = views(self.slot_vector[name], shapes)
            for key, array in arrays.items():
                if key in saved:
                    array[...] = like(array, saved[key])
            self.slot[name] = arrays
        self.placed = True

    def update(self, params, grads):
        """One step for every parameter: `params` move in place, `grads` are left as they were."""
        if not self.placed:
            self._place(params, None)
        self.steps += 1
        for key, param in params.items():
            self.step(param, grads[key].copy(), *(self.slot[name][key] for name in self.slots))

    def update_vectors(self, params, vectors):
        """The training loop's step: `vectors` is (parameter vector, gradient vector), of which `params`
        (and the gradients) are views laid end to end in order, as a Network keeps them
        (`Network.vectors`). The step is elementwise, so running it once over the vectors gives exactly
        the per-array results, in a few array operations instead of a few per parameter array (on a GPU,
        a kernel launch each). The gradient vector is spent. Use it on every step of a run or on none."""
        if not self.placed:
            self._place(params, vectors)
        self.steps += 1
        self.step(*vectors, *(self.slot_vector[name] for name in self.slots))

    def step(self, param, grad, *slots):
        """Update `param` in place from `grad` and this optimizer's slot arrays (named in `slots`); `grad`
        is scratch space, overwritten."""
        raise NotImplementedError

    def state(self) -> dict[str, np.ndarray]:
        arrays = {
            f"{name}/{key}": to_host(value) for name, values in self.slot.items() for key, value in values.items()
        }
        arrays["steps"] = np.array(self.steps)
        return arrays

    def load_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.steps = int(arrays["steps"])
        for name in self.slots:
            self.slot[name] = {
                path.split("/", 1)[1]: np.array(value) for path, value in arrays.items() if path.startswith(name + "/")
            }
        self.slot_vector = {}
        self.placed = False


class SGD(Optimizer):
    """w <- w - lr * dL/dw."""

    typical_lr = (0.01, 1.0)  # learning rates that usually work: plain and momentum SGD want 100x Adam's

    def step(self, param, grad):
        grad *= self.lr
        param -= grad


class Momentum(Optimizer):
    """v <- momentum * v - lr * g;  w <- w + v.  A ball rolling downhill keeps its speed."""

    slots = ("v",)
    typical_lr = (0.005, 0.5)

    def __init__(self, lr, momentum=0.9):
        super().__init__(lr)
        self.momentum = momentum

    def step(self, param, grad, v):
        grad *= self.lr
        v *= self.momentum
        v -= grad
        param += v


class Nesterov(Momentum):
    """v <- momentum * v - lr * g;  w <- w + momentum * v - lr * g  (look ahead along the velocity)."""

    def step(self, param, grad, v):
        grad *= self.lr
        v *= self.momentum
        v -= grad
        param -= grad
        param += self.momentum * v


class AdaGrad(Optimizer):
    """h <- h + g^2;  w <- w - lr * g / (sqrt(h) + eps): frequently updated weights slow down."""

    slots = ("h",)
    typical_lr = (0.005, 0.5)

    def __init__(self, lr, eps=1e-8):
        super().__init__(lr)
        self.eps = eps

    def step(self, param, grad, h):
        h += grad * grad
        self.apply(param, grad, h)

    def apply(self, param, grad, h):
        """w <- w - lr * g / (sqrt(h) + eps), computed into `grad`."""
        denominator = np.sqrt(h)
        denominator += self.eps
        grad /= denominator
        grad *= self.lr
        param -= grad


class RMSprop(AdaGrad):
    """h <- decay * h + (1 - decay) * g^2: like AdaGrad, but old gradients are forgotten."""

    typical_lr = (1e-4, 0.01)

    def __init__(self, lr, decay=0.99, eps=1e-8):
        super().__init__(lr, eps)
        self.decay = decay

    def step(self, param, grad, h):
        h *= self.decay
        h += (1 - self.decay) * grad * grad
        self.apply(param, grad, h)


class Adam(Optimizer):
    """Momentum (m) and RMSprop (v) together, each corrected for its bias toward 0 in the first steps:
    w <- w - lr * m_hat / (sqrt(v_hat) + eps)."""

    slots = ("m", "v")
    typical_lr = (1e-4, 0.01)

    def __init__(self, lr, beta1=0.9, beta2=0.999, eps=1e-8):
        super().__init__(lr)
        self.beta1, self.beta2, self.eps = beta1, beta2, eps

    def step(self, param, grad, m, v):
        grad *= 1 - self.beta1
        m *= self.beta1
        m += grad
        # grad now holds (1 - beta1) g; squared and scaled in place it is (1 - beta2) g^2 with no
        # temporary array (a fresh array the network's size each step measured 3x slower than the rest)
        np.square(grad, out=grad)
        grad *= (1 - self.beta2) / (1 - self.beta1) ** 2
        v *= self.beta2
        v += grad
        # With m_hat = m / c1 and sqrt(v_hat) = sqrt(v) / c2 (c1 = 1 - beta1^t, c2 = sqrt(1 - beta2^t)):
        # lr * m_hat / (sqrt(v_hat) + eps) = (lr * c2 / c1) * m / (sqrt(v) + eps * c2), two scalars.
        c1, c2 = 1 - self.beta1**self.steps, math.sqrt(1 - self.beta2**self.steps)
        denominator = np.sqrt(v, out=grad)  # grad is spent: reuse its memory
        denominator += self.eps * c2
        np.divide(m, denominator, out=denominator)
        denominator *= self.lr * c2 / c1
        param -= denominator


# The optimizers by name: adding one is a class above and a line here. Each one's hyper-parameters are
# the arguments of its __init__ (the tool reads them from there to know which config keys it uses).
OPTIMIZERS = {
    "sgd": SGD,
    "momentum": Momentum,
    "nesterov": Nesterov,
    "adagrad": AdaGrad,
    "rmsprop": RMSprop,
    "adam": Adam,
}


def hyperparameters(name: str) -> tuple[str, ...]:
    """The arguments optimizer `name` takes, in order: ("lr", "momentum") for momentum."""
    return tuple(inspect.signature(OPTIMIZERS[name]).parameters)


def make_optimizer(name: str, **settings) -> Optimizer:
    """The optimizer `name` with the settings it takes; settings it does not take are ignored, so one
    mapping of every hyper-parameter (as a config holds) serves every optimizer."""
    return OPTIMIZERS[name](**{key: settings[key] for key in hyperparameters(name) if key in settings})


# The learning-rate schedules by name, with the settings each one reads besides warmup_epochs.
SCHEDULES = {"constant": (), "step": ("step_size", "gamma"), "cosine": ("min_lr",)}


def learning_rate(
    name: str,
    base_lr: float,
    epochs: int,
    t: float,
    warmup_epochs: float = 0.0,
    step_size: int = 10,
    gamma: float = 0.1,
    min_lr: float = 0.0,
) -> float:
    """The learning rate at training time `t`, measured in epochs (2.5 = halfway through the third).

    A linear warm-up from 0 over `warmup_epochs` comes first; then constant, step (times `gamma` every
    `step_size` epochs) or cosine (from base_lr down to `min_lr` at the last epoch).
    """
    if t < warmup_epochs:
        return base_lr * t / warmup_epochs
    if name == "step":
        return base_lr * gamma ** int(t // step_size)
    if name == "cosine":
        progress = min(1.0, (t - warmup_epochs) / max(epochs - warmup_epochs, 1e-12))
        return min_lr + 0.5 * (base_lr - min_lr) * (1 + math.cos(math.pi * progress))
    return base_lr

"""The page's step-through: a drawn digit forward and backward through one network, layer by layer.

    POST /api/trace?label=L[&session=S]   a picture -> the walk's outline: every layer's name, shape and
                                          rules, the loss for label L (default: the network's answer),
                                          the probabilities, the input and its gradient; and S, the page's id
    GET  /api/layer?session=S&layer=NAME&pass=forward|backward[&params=1]
                                          that layer's output (or dL/d output), a ReLU's mask, the first
                                          layer's weight gradients as pictures, and with params=1 every
                                          parameter gradient of the layer
    POST /api/learn?session=S&rate=R      one SGD step on this digit, on the page's own copy of the network
    POST /api/reset?session=S             the copy back to the model's weights
    POST /api/check?session=S             a sample of this digit's gradients against central differences

Each page has its own copy of the network (float32 as trained, on the CPU), so a learning step never
touches the model or the other pages; the copies are bounded -- in number and in memory -- and the page
least recently used is dropped to make room. Arrays travel as base64 float32 (exact, a quarter the size
of decimal text).
"""

from __future__ import annotations

import base64
import math
import secrets
import threading
from collections import OrderedDict
from http import HTTPStatus

import numpy as np

from ..config.build import build_network
from ..data.digits import to_float
from ..views.step_through import check_sample, learn, walk

MAX_PAGES = 16  # pages with their own copy; the least recently used is dropped beyond this
COPIES_BUDGET = 400_000_000  # bytes of network copies at most, whatever the model's size
MAX_RATE = 100.0


class RequestError(Exception):
    """A bad request: (HTTP status, message) for the page."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def encode(values: np.ndarray) -> dict:
    values = np.ascontiguousarray(values, dtype=np.float32)
    return {"shape": list(values.shape), "float32": base64.b64encode(values.tobytes()).decode("ascii")}


def decode(encoded: dict) -> np.ndarray:
    """The inverse of encode (for tests and scripts)."""
    return np.frombuffer(base64.b64decode(encoded["float32"]), dtype=np.float32).reshape(encoded["shape"])


class Page:
    """One page's digit, label, walk and network copy."""

    def __init__(self, member, members: int, session: str):
        self.member, self.members, self.session, self.lock = member, members, session, threading.Lock()
        self.network = build_network(member.config, seed=0)
        self.network.load_state(member.network.state())
        self.x = self.walked = None
        self.steps_learned = 0

    def trace(self, x: np.ndarray, label: int | None) -> None:
        self.x, self.walked = x, walk(self.network, x, label)

    def outline(self) -> dict:
        walked = self.walked
        return {
            "session": self.session,
            "member": self.member.name,
            "members": self.members,
            "label": walked.label,
            "read": walked.read,
            "loss": walked.loss,
            "probabilities": walked.probabilities.round(6).tolist(),
            "input": encode(walked.input.reshape(28, 28)),
            "input_grad": encode(walked.input_grad.reshape(28, 28)),
            "layers": [step.describe(self.network.layers[step.name]) for step in walked.layers],
            "steps_learned": self.steps_learned,
        }


class StepThrough:
    def __init__(self, model):
        self.member = model.members[0]  # an ensemble: the step-through follows its first member
        self.members = len(model.members)
        self.pages: OrderedDict[str, Page] = OrderedDict()
        self.lock = threading.Lock()
        network_bytes = sum(a.nbytes for a in self.member.network.state().values())
        self.max_pages = max(2, min(MAX_PAGES, COPIES_BUDGET // max(network_bytes, 1)))

    def page(self, query: dict, create: bool = False) -> Page:
        session = query.get("session", "")
        with self.lock:
            if session in self.pages:
                self.pages.move_to_end(session)
                return self.pages[session]
            if not create:
                raise RequestError(
                    HTTPStatus.NOT_FOUND,
                    "no digit traced for this page: draw one first (or it was dropped to make room for other pages)",
                )
            while len(self.pages) >= self.max_pages:
                self.pages.popitem(last=False)
            session = secrets.token_hex(12)
            page = self.pages[session] = Page(self.member, self.members, session)
            return page

    def trace(self, query: dict, prepared) -> dict:
        label = None
        if query.get("label", "") not in ("", "read"):
            label = parse_label(query["label"], self.member.network.sizes[-1])
        x = to_float(prepared.pixels.reshape(1, -1).round().astype(np.uint8), np.float32)
        page = self.page(query, create=True)
        with page.lock:
            page.trace(x, label)
            return page.outline()

    def layer(self, query: dict) -> dict:
        page = self.page(query)
        with page.lock:
            steps = {step.name: step for step in page.walked.layers}
            name, direction = query.get("layer", ""), query.get("pass", "forward")
            if name not in steps:
                raise RequestError(HTTPStatus.NOT_FOUND, f"no layer {name[:40]!r}; the layers: {', '.join(steps)}")
            if direction not in ("forward", "backward"):
                raise RequestError(HTTPStatus.BAD_REQUEST, f"pass={direction[:20]!r}: forward or backward")
            step = steps[name]
            answer = {
                "layer": name,
                "pass": direction,
                "values": encode(step.output if direction == "forward" else step.grad),
            }
            if direction == "backward":
                if step.mask is not None:
                    answer["mask"] = encode(step.mask)
                if step is next((s for s in page.walked.layers if s.param_grads), None):
                    answer["weight_pictures"] = weight_pictures(step)
                if query.get("params") == "1":
                    answer["param_grads"] = {key: encode(grad) for key, grad in step.param_grads.items()}
            return answer

    def learn(self, query: dict) -> dict:
        rate = parse_rate(query.get("rate", ""))
        page = self.page(query)
        with page.lock:
            before = page.walked
            learn(page.network, before, rate)
            page.steps_learned += 1
            page.trace(page.x, before.label)
            after = page.walked
            return {
                "label": before.label,
                "rate": rate,
                "before": {"loss": before.loss, "probabilities": before.probabilities.round(6).tolist()},
                "after": {"loss": after.loss, "probabilities": after.probabilities.round(6).tolist()},
                "steps_learned": page.steps_learned,
                "outline": page.outline(),
            }

    def reset(self, query: dict) -> dict:
        page = self.page(query)
        with page.lock:
            page.network.load_state(self.member.network.state())
            page.steps_learned = 0
            page.trace(page.x, page.walked.label)
            return page.outline()

    def check(self, query: dict) -> dict:
        page = self.page(query)
        with page.lock:
            network64 = build_network(self.member.config, seed=0, dtype="float64")
            network64.load_state(page.network.state())
            return check_sample(network64, page.x.astype(np.float64), page.walked.label)


def parse_label(text: str, classes: int) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) >= classes:
        raise RequestError(HTTPStatus.BAD_REQUEST, f"label={text[:20]!r}: a digit 0 to {classes - 1}, or 'read'")
    return int(text)


def parse_rate(text: str) -> float:
    try:
        rate = float(text)
    except ValueError:
        rate = math.nan
    if not (math.isfinite(rate) and 0 < rate <= MAX_RATE):
        raise RequestError(HTTPStatus.BAD_REQUEST, f"rate={text[:20]!r}: a learning rate above 0, at most {MAX_RATE:g}")
    return rate


def weight_pictures(step) -> dict:
    """The first layer's dL/dW as pictures: a convolution's filters (one KxK picture each, channels summed),
    or, for an Affine reading 784 pixels, the 28x28 weight gradient of its 8 units with the largest."""
    key = next(k for k in step.param_grads if k.startswith("W"))
    grad = step.param_grads[key]
    if step.kind == "Convolution":  # (KH, KW, C, filters)
        pictures = grad.sum(axis=2).transpose(2, 0, 1)
        return {"param": key, "pictures": encode(pictures), "titles": [f"filter {i + 1}" for i in range(len(pictures))]}
    units = np.argsort(np.linalg.norm(grad, axis=0))[::-1][:8]
    side = math.isqrt(grad.shape[0])
    pictures = (
        grad[:, units].T.reshape(len(units), side, -1) if side * side == grad.shape[0] else grad[:, units].T[:, None, :]
    )
    return {"param": key, "pictures": encode(pictures), "titles": [f"unit {u + 1}" for u in units]}

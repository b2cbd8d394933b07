"""Digits written the ways people write them, made from MNIST's t10k digits (never trained on): the test
set of the README's "your own digits" table and of tests/test_own_digits.py.

Each style keeps the digit and changes everything MNIST's preparation undoes: the polarity, the paper,
the size and place on the page, the file format, transparency, the pen.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter


def _big(digit: np.ndarray, size: int) -> Image.Image:
    return Image.fromarray(digit.astype(np.uint8)).resize((size, size), Image.Resampling.BICUBIC)


def scan(digit, rng) -> bytes:
    """Dark ink on uneven light paper, at a random size and place on the page, saved as a JPEG."""
    size = int(rng.integers(70, 200))
    page_h, page_w = 320, 300
    paper = np.linspace(205, 240, page_w)[None, :] + rng.normal(0, 4, (page_h, page_w))  # a shadow across it
    ink = np.zeros((page_h, page_w))
    top, left = int(rng.integers(5, page_h - size - 5)), int(rng.integers(5, page_w - size - 5))
    ink[top : top + size, left : left + size] = np.asarray(_big(digit, size), dtype=float)
    page = paper - ink / 255 * (paper - 25)
    out = io.BytesIO()
    Image.fromarray(np.clip(page, 0, 255).astype(np.uint8)).save(out, format="JPEG", quality=75)
    return out.getvalue()


def canvas(digit, rng) -> bytes:
    """Black strokes on a transparent 280x280 canvas, as a drawing page exports it (PNG with alpha)."""
    rgba = np.zeros((280, 280, 4), np.uint8)
    rgba[40:240, 40:240, 3] = np.asarray(_big(digit, 200))
    out = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(out, format="PNG")
    return out.getvalue()


def screenshot(digit, rng) -> bytes:
    """White on black in colour, three times the size, off-centre on a wider black screen."""
    screen = Image.new("RGB", (200, 140), (0, 0, 0))
    screen.paste(_big(digit, 84).convert("RGB"), (int(rng.integers(0, 110)), int(rng.integers(0, 50))))
    out = io.BytesIO()
    screen.save(out, format="PNG")
    return out.getvalue()


def bold_pen(digit, rng) -> bytes:
    """A thick marker: the strokes widened, dark on white."""
    bold = _big(digit, 112).filter(ImageFilter.MaxFilter(5))
    out = io.BytesIO()
    Image.fromarray(255 - np.asarray(bold)).save(out, format="PNG")
    return out.getvalue()


STYLES = {
    "scanned on paper (JPEG)": scan,
    "drawn on a transparent canvas": canvas,
    "white on black screenshot": screenshot,
    "bold pen": bold_pen,
}


def accuracies(model_path, images: np.ndarray, labels: np.ndarray, seed: int = 0) -> dict:
    """{style: (prepared as MNIST's, simply resized to 28x28)} accuracies, and "csv rows": the same digits
    as the rows a CSV holds. Every picture goes through the very preparation `predict --image` uses."""
    from bp_train.data.digits import to_float
    from bp_train.data.images import decode, prepare_bytes
    from bp_train.data.images import resized as naive_resize
    from bp_train.files.model import load_model

    network, _, _ = load_model(model_path)
    read = lambda rows: float(
        np.mean(
            network.predict(to_float(np.stack(rows).round().astype(np.uint8), network.dtype)).argmax(axis=1) == labels
        )
    )
    rng = np.random.default_rng(seed)
    figures = {"csv rows": (read(list(images.reshape(len(images), -1))), None)}
    for name, make in STYLES.items():
        files = [make(digit.reshape(28, 28), rng) for digit in images]
        prepared = [prepare_bytes(f, name).pixels.reshape(-1) for f in files]
        resized = [naive_resize(decode(io.BytesIO(f), name)).reshape(-1) for f in files]
        figures[name] = (read(prepared), read(resized))
    return figures

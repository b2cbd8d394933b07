"""Data augmentation: every training digit slightly distorted, differently each time it is drawn.

A distortion moves pixels, it does not change the digit: a 7 shifted by two pixels, turned by 10 degrees,
a little wider, slanted, or bent by a smooth random warp is still a 7. Training on such digits
(Simard et al., 2003) is the largest single gain left on MNIST.

Each distortion is a map from output pixels to the source positions they read, and the image is
resampled there:

    source = T^-1 (p - c - shift) + c  +  alpha * smooth_noise(p)

with p an output pixel (x to the right, y downwards), c the image centre, T = rotation . scale . shear,
and the last term the elastic warp: a field of uniform noise in [-1, 1] per pixel and direction, smoothed
by a Gaussian of width `sigma` and scaled by `alpha` (Simard's recipe). Sampling is bilinear, pixels
outside the image read as 0, so values stay in [0, 1].

The resampling is vectorized NumPy, not `scipy.ndimage`, the tool most MNIST augmentation code uses:
measured here on batches of 100 digits, bilinear sampling by four gathers took 1.1 ms against 27 ms for
`ndimage.map_coordinates` (whose results it matches to 1e-16, mode "grid-constant"), and smoothing the
noise as two small matrix products, G . noise . G^T, 0.4-1.1 ms against 4 ms for
`ndimage.gaussian_filter`. No Python loop runs over images or pixels.

Draws come from the augmenter's own seeded generator, kept in the checkpoint, so a run is reproducible
and resumes exactly. Only training batches are distorted; validation, evaluate and predict never are.
On a GPU (`--device cuda`) the draws are made on the host, as on the CPU, and moved; the resampling and
the smoothing run where the batch lives, so the batch never makes a round trip to the host.
"""

from __future__ import annotations

import numpy as np

from ..nn.backend import arange_like, constant_like, like


def affine_matrices(rotate_deg: np.ndarray, scale: np.ndarray, shear: np.ndarray) -> np.ndarray:
    """(N, 2, 2) matrices T = rotation(angle) . scale . shear, in (x, y) with y pointing down, so that a
    positive angle turns the digit counterclockwise as it is seen on screen."""
    angle = np.deg2rad(rotate_deg)
    cos, sin = np.cos(angle), np.sin(angle)
    rotation = np.stack([np.stack([cos, sin], -1), np.stack([-sin, cos], -1)], -2)  # y down: ccw on screen
    shearing = np.zeros_like(rotation)
    shearing[:, 0, 0] = shearing[:, 1, 1] = 1.0
    shearing[:, 0, 1] = shear  # x += shear * y: a slant
    return rotation @ (scale[:, None, None] * shearing)


def bilinear(images: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Sample (N, C, H, W) images at fractional positions rows, cols (N, H, W each), the same positions for
    every channel: each value is the four surrounding pixels weighted by closeness; outside reads as 0.

    The image is padded with two rows and columns of zeros on every side, and the positions clipped into
    that border, so a position outside the image reads four zeros without any test per pixel."""
    n, c, h, w = images.shape
    padded = np.pad(images, ((0, 0), (0, 0), (2, 2), (2, 2)))
    r0, c0 = np.floor(rows), np.floor(cols)
    fr, fc = (rows - r0)[:, None], (cols - c0)[:, None]  # (N, 1, H, W): broadcast over channels
    r0 = np.clip(r0, -2, h).astype(np.intp) + 2
    c0 = np.clip(c0, -2, w).astype(np.intp) + 2
    image = arange_like(images, n * c).reshape(n, c, 1, 1)  # each image's start in the flat padded array
    base = (image * (h + 4) + r0[:, None]) * (w + 4) + c0[:, None]
    flat = padded.reshape(-1)
    top = flat[base] * (1 - fc) + flat[base + 1] * fc
    bottom = flat[base + w + 4] * (1 - fc) + flat[base + w + 5] * fc
    return top * (1 - fr) + bottom * fr


def gaussian_matrix(size: int, sigma: float, dtype=np.float64) -> np.ndarray:
    """The (size, size) matrix that smooths a signal of `size` samples with a Gaussian of width `sigma`
    (zeros beyond the ends): smoothing an image is then G . image . G^T."""
    offsets = np.arange(size)[:, None] - np.arange(size)[None, :]
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    return (kernel / kernel.sum(axis=1, keepdims=True).max()).astype(dtype)


def image_centre(h: int, w: int, dtype) -> np.ndarray:
    """(1, 2, 1, 1): the centre's x and y, shaped to be added to positions (N, 2, H, W)."""
    return np.array([(w - 1) / 2, (h - 1) / 2], dtype=dtype).reshape(1, 2, 1, 1)


def centred_grid(h: int, w: int, dtype) -> np.ndarray:
    """(2, H, W): the x and y of every pixel, measured from the image centre."""
    y, x = np.mgrid[0:h, 0:w].astype(dtype)
    return np.stack([x, y]) - image_centre(h, w, dtype)[0]


def distort(
    images: np.ndarray, matrices: np.ndarray, shifts: np.ndarray, displacement: np.ndarray | None = None
) -> np.ndarray:
    """Resample (N, C, H, W) `images`: output pixel p reads the source T^-1 (p - c - shift) + c, plus the
    elastic `displacement` (N, 2, H, W: dx, dy) if given. Bilinear, 0 outside the image."""
    n, c, h, w = images.shape
    inverse = like(images, np.linalg.inv(matrices).astype(images.dtype))  # (N, 2, 2), from the host's draws
    rel = constant_like(images, centred_grid, h, w, images.dtype)[None] - like(images, shifts)[:, :, None, None]
    source = np.einsum("nij,njhw->nihw", inverse, rel) + constant_like(images, image_centre, h, w, images.dtype)
    if displacement is not None:
        source += displacement
    out = bilinear(images, source[:, 1], source[:, 0])
    return np.clip(out, 0.0, 1.0, out=out)


def augment_rng(seed: int) -> np.random.Generator:
    """The augmentation draws' own generator for a run's seed (kept apart from init, shuffling, dropout)."""
    return np.random.default_rng([seed, 7])


class Augmenter:
    """Draws one random distortion per image of each training batch, as `train.augment` describes."""

    def __init__(self, settings, input_shape, rng: np.random.Generator):
        self.settings = settings
        self.shape = tuple(input_shape)  # (C, H, W)
        self.rng = rng

    def draw(self, n: int, dtype=np.float32):
        """Random (matrices, shifts, noise) for n images, on the host: noise is the elastic warp's
        uniform noise (N, 2, H, W) before smoothing, or None."""
        s, rng = self.settings, self.rng
        rotate = rng.uniform(-s.rotate, s.rotate, n)
        scale = 1.0 + rng.uniform(-s.scale, s.scale, n)
        shear = rng.uniform(-s.shear, s.shear, n)
        shifts = rng.uniform(-s.shift, s.shift, (n, 2)).astype(dtype)
        noise = None
        if s.elastic is not None and s.elastic.alpha > 0:
            _, h, w = self.shape
            noise = rng.uniform(-1.0, 1.0, (n, 2, h, w)).astype(dtype)
        return affine_matrices(rotate, scale, shear), shifts, noise

    def __call__(self, x):
        """A distorted copy of a batch of rows (N, C*H*W) in [0, 1], made where the batch lives."""
        matrices, shifts, noise = self.draw(len(x), x.dtype)
        displacement = None
        if noise is not None:  # smoothed by G . noise . G^T, with G the Gaussian of width sigma
            _, h, w = self.shape
            sigma = self.settings.elastic.sigma
            rows, cols = (constant_like(x, gaussian_matrix, size, sigma, x.dtype) for size in (h, w))
            displacement = self.settings.elastic.alpha * (rows @ like(x, noise) @ cols.T)
        images = x.reshape(len(x), *self.shape)
        return distort(images, matrices, shifts, displacement).reshape(len(x), -1)


def augmented_samples(config, count: int = 4, versions: int = 3, cache: bool = True):
    """The first `count` training rows of a config's data (uint8 images) with `versions` distortions of
    each, as `train.augment` would draw them (seeded like a run): [(original, [distorted, ...]), ...]."""
    from ..errors import ConfigError
    from .digits import load_digits, to_float

    if config.train.augment is None:
        raise ConfigError(
            f"{config.name}: the config has no train.augment section to show; add e.g. "
            "augment: {shift: 2, rotate: 10, scale: 0.1, shear: 0.1, elastic: {alpha: 34, sigma: 4}}"
        )
    digits = load_digits(config.data.train, require_labels=True, cache=cache)
    originals = digits.images[:count]
    augmenter = Augmenter(config.train.augment, config.model.input_shape, augment_rng(config.train.seed))
    batch = to_float(np.repeat(originals, versions, axis=0))
    distorted = np.rint(augmenter(batch) * 255).astype(np.uint8).reshape(len(originals), versions, -1)
    return list(zip(originals, distorted))


def shifted(x: np.ndarray, input_shape, shift: tuple[float, float], rotate_deg: float = 0.0) -> np.ndarray:
    """Rows (N, C*H*W) moved by `shift` = (dx, dy) pixels and turned by `rotate_deg`, all by the same fixed
    amount: the views test-time augmentation averages over. The resampling is `distort`'s, as in training;
    a whole-pixel shift without rotation reads whole pixels, so no shift at all returns `x`'s own values."""
    n = len(x)
    matrices = affine_matrices(np.full(n, rotate_deg), np.ones(n), np.zeros(n))
    shifts = np.tile(np.asarray(shift, dtype=x.dtype), (n, 1))
    return distort(x.reshape(n, *input_shape), matrices, shifts).reshape(n, -1)

"""A picture of a digit, made into the 28x28 that MNIST's networks have seen: the dataset's own recipe.

MNIST's digits are white on black, fitted into a 20x20 box with their aspect ratio kept (anti-aliased,
so edges are grey), and placed in a 28x28 field so that their centre of mass sits at the centre. A photo,
a scan or a canvas drawing is none of these, and a network shown one simply resized to 28x28 is shown a
picture unlike anything it trained on ("whatever I draw, it says 7"). Each step below undoes one
difference, in the order MNIST's makers applied them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError, unreadable

SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP")  # what Pillow may decode: no TIFF, DDS, PSD, EPS, ...
MAX_FILE_BYTES = 50_000_000  # a photo is a few MB; beyond this we do not even open it
# A digit needs a few hundred pixels a side. A JPEG is decoded scaled down by its own DCT (Pillow's draft,
# 1/2 to 1/8), so a 40-megapixel photo costs what a 1-megapixel one does; other formats are decoded
# whole, up to a 12-megapixel (4000x3000) picture, and shrunk at once to at most WORKING_SIDE a side.
MAX_JPEG_PIXELS = 40_000_000
MAX_DECODED_PIXELS = 12_000_000
WORKING_SIDE = 1024
BOX, FIELD = 20, 28  # MNIST: the digit fitted into 20x20, placed in 28x28


@dataclass
class Prepared:
    pixels: np.ndarray  # (28, 28) float64, 0 (background) .. 255 (ink), as a CSV row holds them
    source: str
    notes: list = field(default_factory=list)  # what was done that a user should know (inverted, first frame)


def open_image(path: Path):
    """The picture in a file, decoded and bounded: one DataError naming the file for anything else."""
    if problem := unreadable(path, "image"):
        raise DataError(problem)
    if path.stat().st_size > MAX_FILE_BYTES:
        raise DataError(
            f"{path}: {path.stat().st_size / 1e6:,.0f} MB is more than an image of a digit needs "
            f"(at most {MAX_FILE_BYTES / 1e6:.0f} MB)"
        )
    return decode(path, str(path))


def decode(source, name: str):
    """Pillow's decoding of a file or file-like `source`, in the formats of FORMATS only, bounded from the
    header alone -- before a byte of the picture is decoded -- to what a digit needs (see MAX_*)."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    # Pillow warns (two stray lines on stderr) about pictures it finds large: our own bounds come first.
    warnings.simplefilter("error", Image.DecompressionBombWarning)
    try:
        image = Image.open(source, formats=FORMATS)
        width, height = image.size
        if image.format == "JPEG" and width * height <= MAX_JPEG_PIXELS:
            image.draft(image.mode, (WORKING_SIDE, WORKING_SIDE))  # decode at 1/2..1/8 scale, no smaller
            width, height = image.size
        if width * height > MAX_DECODED_PIXELS:
            raise DataError(
                f"{name}: declares {width}x{height} pixels; a digit needs far fewer (we decode at most "
                f"{MAX_DECODED_PIXELS / 1e6:.0f} million, or a JPEG of {MAX_JPEG_PIXELS / 1e6:.0f} million)"
            )
        if width < 1 or height < 1:
            raise DataError(f"{name}: declares an empty picture ({width}x{height})")
        image.load()
    except DataError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        kind = (
            "not an image we read (PNG, JPEG, BMP, GIF or WebP)"
            if isinstance(exc, UnidentifiedImageError)
            else "declares more pixels than we decode (a decompression bomb?)"
        )
        raise DataError(f"{name}: {kind}") from None
    except MemoryError:
        raise DataError(f"{name}: not enough memory to decode this picture") from None
    except Exception as exc:  # anything a damaged file makes a decoder raise is bad input
        raise DataError(f"{name}: a damaged or truncated image ({str(exc)[:120] or type(exc).__name__})") from None
    return image


def shrink(image):
    """At most WORKING_SIDE pixels a side, by whole-pixel averaging (Pillow's reduce), before any copy of
    the picture is made in floats."""
    factor = -(-max(image.size) // WORKING_SIDE)
    if factor <= 1:
        return image
    try:
        return image.reduce(factor)
    except ValueError:  # a mode reduce does not take (a palette, 1-bit): through RGBA, alpha kept
        return image.convert("RGBA").reduce(factor)


def first_frame(image, notes: list):
    """An animated GIF or WebP: its first frame, and a note saying so."""
    if getattr(image, "n_frames", 1) > 1:
        notes.append(f"the first of its {image.n_frames} frames")
        image.seek(0)
    return image


def flatten_transparency(image):
    """Transparent pixels onto white paper. A canvas drawing is black strokes on *transparent* pixels, which
    are black too once the alpha is dropped: the whole picture would turn into one black square."""
    from PIL import Image

    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        paper = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(paper, image.convert("RGBA"))
    return image


def to_grey(image) -> np.ndarray:
    """Brightness 0..255 as floats, whatever the mode: colour, CMYK and palette through Pillow's own
    conversion; 16- and 32-bit greys scaled down rather than clipped (65535 is white, not 255 times it)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return np.asarray(image, dtype=np.float64) / 257.0
    if image.mode in ("I", "F"):
        values = np.asarray(image, dtype=np.float64)
        top = values.max()
        return values * (255.0 / top) if top > 255 else values
    return np.asarray(image.convert("L"), dtype=np.float64)


def border(grey: np.ndarray) -> np.ndarray:
    """The outermost row and column on each side: where the paper is, in any picture of one digit."""
    return np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])


def white_on_black(grey: np.ndarray, notes: list) -> np.ndarray:
    """MNIST's polarity. Dark ink on light paper (a scan, a canvas) has a light border: invert it."""
    if np.median(border(grey)) > 127:
        notes.append("inverted (dark ink on light paper)")
        return 255.0 - grey
    return grey


def remove_background(grey: np.ndarray) -> np.ndarray:
    """Paper is never 255 (nor, once inverted, 0): subtract its level, read off the border, so that only
    ink is left above zero, and stretch the ink to the full 0..255 as MNIST's strokes are."""
    ink = np.clip(grey - np.percentile(border(grey), 90) - 8.0, 0, None)  # 8 levels of margin for paper grain
    top = ink.max()
    return ink * (255.0 / top) if top > 0 else ink


def crop_to_ink(ink: np.ndarray, source: str) -> np.ndarray:
    """The smallest box holding every pixel of ink (at least a tenth of the strongest)."""
    rows, cols = np.nonzero(ink > 0.05 * ink.max()) if ink.max() > 0 else ((), ())
    if len(rows) == 0:
        raise DataError(f"{source}: no ink found: the picture is blank (one colour throughout)")
    return ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]


def fit_box(ink: np.ndarray, box: int = BOX) -> np.ndarray:
    """The longer side scaled to `box` pixels, the aspect ratio kept (a 1 stays thin), anti-aliased: a
    box filter averages every source pixel a target pixel covers, which is how MNIST got its grey edges."""
    from PIL import Image

    height, width = ink.shape
    scale = box / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(
        Image.fromarray(ink.astype(np.float32), mode="F").resize(size, Image.Resampling.BOX), dtype=np.float64
    )


def centre_of_mass(ink: np.ndarray) -> tuple[float, float]:
    rows, cols = np.indices(ink.shape)
    total = ink.sum()
    return float((rows * ink).sum() / total), float((cols * ink).sum() / total)


def place_by_centre_of_mass(digit: np.ndarray, size: int = FIELD) -> np.ndarray:
    """Paste into a size x size field, shifted (by whole pixels) so that the centre of mass lands at the
    field's centre: MNIST centres by mass, not by box, so a 7's heavy top sits where the network expects."""
    field_ = np.zeros((size, size))
    row, col = centre_of_mass(digit)
    centre = (size - 1) / 2
    top = int(np.clip(round(centre - row), 0, size - digit.shape[0]))
    left = int(np.clip(round(centre - col), 0, size - digit.shape[1]))
    field_[top : top + digit.shape[0], left : left + digit.shape[1]] = digit
    return field_


def prepare_grey(grey: np.ndarray, source: str, notes: list) -> np.ndarray:
    """The steps after decoding, on a brightness array."""
    ink = remove_background(white_on_black(grey, notes))
    digit = fit_box(crop_to_ink(ink, source))
    digit *= 255.0 / digit.max()  # averaging grainy strokes dims them: MNIST's strokes reach full white
    return np.clip(place_by_centre_of_mass(digit), 0, 255)


def prepare(path: str | os.PathLike) -> Prepared:
    """The whole recipe, from a file to the 28x28 a network reads."""
    return prepare_image(open_image(Path(path)), str(path))


def prepare_bytes(data: bytes, name: str) -> Prepared:
    """The same for a picture sent as bytes (the page's canvas, a dropped photo)."""
    import io

    if len(data) > MAX_FILE_BYTES:
        raise DataError(f"{name}: more than {MAX_FILE_BYTES / 1e6:.0f} MB")
    return prepare_image(decode(io.BytesIO(data), name), name)


def prepare_image(image, name: str) -> Prepared:
    notes = []
    try:
        grey = to_grey(shrink(flatten_transparency(first_frame(image, notes))))
    except MemoryError:
        raise DataError(f"{name}: not enough memory to read this picture") from None
    except Exception as exc:  # a mode Pillow opens but cannot convert (LAB, a broken palette)
        raise DataError(
            f"{name}: a picture in a form we cannot turn into grey ({image.mode}: {str(exc)[:80]})"
        ) from None
    return Prepared(prepare_grey(grey, name, notes), name, notes)


def naive(path: str | os.PathLike) -> np.ndarray:
    """What a tutorial does: the picture resized to 28x28 and nothing else (the baseline of the table in docs/own-digits.md)."""
    return resized(open_image(Path(path)))


def resized(image) -> np.ndarray:
    """A decoded picture in grey, resized to 28x28, nothing more."""
    from PIL import Image

    return np.asarray(image.convert("L").resize((FIELD, FIELD), Image.Resampling.BILINEAR), dtype=np.float64)


def image_files(paths) -> list[Path]:
    """Every image named, a folder standing for the images in it (sorted); a folder with none is an error."""
    found = []
    for item in map(Path, paths):
        if item.is_dir():
            inside = sorted(p for p in item.iterdir() if p.suffix.lower() in SUFFIXES and p.is_file())
            if not inside:
                raise DataError(f"{item}: a folder with no images in it (looked for {', '.join(SUFFIXES)})")
            found += inside
        else:
            found.append(item)
    return found

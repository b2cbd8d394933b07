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

from ..errors import DataError

SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
MAX_FILE_BYTES = 50_000_000  # a photo is a few MB; beyond this we do not even open it
MAX_PIXELS = 40_000_000  # a 40-megapixel picture; a "decompression bomb" declares far more
BOX, FIELD = 20, 28  # MNIST: the digit fitted into 20x20, placed in 28x28


@dataclass
class Prepared:
    pixels: np.ndarray  # (28, 28) float64, 0 (background) .. 255 (ink), as a CSV row holds them
    source: str
    notes: list = field(default_factory=list)  # what was done that a user should know (inverted, first frame)


def open_image(path: Path):
    """The picture in a file, decoded and bounded: one DataError naming the file for anything else."""
    if not path.is_file():
        raise DataError(f"{path}: image not found" if not path.exists() else f"{path}: not a file")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise DataError(
            f"{path}: {path.stat().st_size / 1e6:,.0f} MB is more than an image of a digit needs "
            f"(at most {MAX_FILE_BYTES / 1e6:.0f} MB)"
        )
    return decode(path, str(path))


def decode(source, name: str):
    """Pillow's decoding of a file or file-like `source`, refusing a picture that declares more pixels than
    MAX_PIXELS from its header alone, before a byte of it is decoded."""
    from PIL import Image, UnidentifiedImageError

    Image.MAX_IMAGE_PIXELS = MAX_PIXELS // 2  # Pillow refuses twice this outright, and warns above it
    try:
        image = Image.open(source)
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise DataError(
                f"{name}: declares {width}x{height} pixels, more than the {MAX_PIXELS:,} we decode "
                "(a small file declaring a huge picture is a decompression bomb)"
            )
        image.load()
    except DataError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        kind = (
            "not an image Pillow can read (PNG, JPEG, BMP, GIF or WebP)"
            if isinstance(exc, UnidentifiedImageError)
            else "declares more pixels than we decode (a decompression bomb?)"
        )
        raise DataError(f"{name}: {kind}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # truncated or damaged data inside a real header
        raise DataError(f"{name}: a damaged or truncated image ({str(exc)[:120]})") from None
    return image


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
    grey = to_grey(flatten_transparency(first_frame(image, notes)))
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

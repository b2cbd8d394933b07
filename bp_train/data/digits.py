"""Digit data: the Kaggle "Digit Recognizer" CSV, checked, cached, split and batched.

The CSV has a header and one image per row: a `label` column (0-9; absent in the test file) and 784 pixel
columns `pixel0..pixel783` (or `pixel1..pixel784`), each 0-255. Images are kept as uint8 (a quarter of
the memory of float32) and turned into float32 in [0, 1] only for training and prediction. Reading a
42,000-row CSV takes seconds, so the parsed arrays are cached as an .npz keyed by the file's path, size
and modification time: a second load takes milliseconds.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import DataError, unreadable
from ..files.store import atomic_path
from ..nn.backend import like

if TYPE_CHECKING:  # pandas is imported where a CSV is parsed: a third of a second every command would pay
    import pandas as pd

PIXELS = 784
CACHE_FORMAT = 1


@dataclass
class Digits:
    """Images (N, 784) uint8 and labels (N,) uint8, or None for an unlabelled test file."""

    images: np.ndarray
    labels: np.ndarray | None
    source: str = ""

    def __len__(self):
        return len(self.images)

    def subset(self, rows: np.ndarray) -> Digits:
        return Digits(self.images[rows], None if self.labels is None else self.labels[rows], self.source)


def to_float(images: np.ndarray, dtype=np.float32) -> np.ndarray:
    """uint8 0-255 -> [0, 1] in one pass, with no intermediate copy."""
    return np.multiply(images, np.array(1 / 255, dtype=dtype), dtype=dtype)


def resolve(path: str | os.PathLike) -> Path:
    """`path`, or `path.gz` when only the compressed file is there: the Kaggle files come as train.csv.gz
    and test.csv.gz, and a config naming data/train.csv should find them as downloaded."""
    path = Path(path)
    if not path.name:  # '', '.', '/': no file name to add .gz to (reading it then says it is no file)
        return path
    zipped = path.with_name(path.name + ".gz")
    if not path.exists() and path.suffix != ".gz" and zipped.is_file():
        return zipped
    return path


# --- reading the CSV ---------------------------------------------------------------------------------


def _pixel_order(columns: list[str], path: Path) -> list[str]:
    """The 784 pixel column names in image order, accepting 0-based or 1-based numbering."""
    numbered = {}
    for name in columns:
        match = re.fullmatch(r"pixel(\d+)", name)
        if match is None:
            raise DataError(
                f"{path}: line 1: unexpected column {name!r}; expected 'label' and "
                f"pixel0..pixel783 (or pixel1..pixel784)"
            )
        numbered[int(match.group(1))] = name
    if not numbered:
        raise DataError(f"{path}: line 1: no pixel columns; expected a header 'label,pixel0,...,pixel783'")
    start = 1 if 0 not in numbered else 0
    expected = range(start, start + PIXELS)
    missing = [i for i in expected if i not in numbered]
    extra = sorted(set(numbered) - set(expected))
    if missing:
        raise DataError(
            f"{path}: line 1: {len(missing)} pixel column(s) missing, first pixel{missing[0]}; "
            f"expected {PIXELS} columns pixel{start}..pixel{start + PIXELS - 1}"
        )
    if extra:
        raise DataError(
            f"{path}: line 1: extra pixel column pixel{extra[0]}; expected {PIXELS} columns "
            f"pixel{start}..pixel{start + PIXELS - 1}"
        )
    return [numbered[i] for i in expected]


def _first_bad(frame: pd.DataFrame, columns: list[str], low: int, high: int, path: Path, what: str):
    """Raise for the first cell (in file order) that is empty, not a whole number, or outside low..high."""
    import pandas as pd

    block = frame[columns]
    numeric = block.apply(pd.to_numeric, errors="coerce")
    values = numeric.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(values) | (values != np.round(values)) | (values < low) | (values > high)
    if not bad.any():
        return values
    row, col = np.argwhere(bad)[0]
    raw = block.iat[row, col]
    raw = raw.item() if isinstance(raw, np.generic) else raw  # show 256, not np.int16(256)
    line = row + 2  # line 1 is the header
    if pd.isna(raw) or (isinstance(raw, str) and not raw.strip()):
        problem = "is empty"
    elif np.isnan(values[row, col]):
        problem = f"is {raw!r}, not a number"
    elif np.isinf(values[row, col]):
        problem = "is infinite or too big to be a number (e.g. 1e400)"
    else:
        problem = f"is {raw}"
    raise DataError(
        f"{path}: line {line}, column {columns[col]!r}: the value {problem}; "
        f"expected a whole number {low}..{high} ({what})"
    )


class _BoundedReader:
    """A binary file (gunzipped on the fly for .gz) that stops with an error once more than `limit` bytes
    of text have come out of it: a small .gz can inflate to more CSV text than memory can parse. A UTF-8
    byte-order mark is dropped here, so that pandas can take the bytes as UTF-8 without a decoding pass."""

    def __init__(self, path: Path, limit: int):
        self.path, self.limit, self.count = path, limit, 0
        self.raw = gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")
        start = self.raw.read(3)
        self.pending = b"" if start == b"\xef\xbb\xbf" else start

    def read(self, size: int = -1) -> bytes:
        size = self.limit + 1 - self.count if size is None or size < 0 else size
        data, self.pending = self.pending[:size], self.pending[size:]
        data += self.raw.read(size - len(data))
        self.count += len(data)
        if self.count > self.limit:
            raise DataError(
                f"{self.path}: more than {self.limit / 1e6:,.0f} MB of CSV text, more than this "
                "machine's free memory can parse (a digit CSV of 42,000 rows is 73 MB)"
            )
        return data

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.raw.close()


def _text_limit() -> int:
    """The most CSV text we agree to parse: pandas needs up to about three times the text in memory."""
    from ..machine.memory import available_memory

    return available_memory() // 3


def _read_text(path: Path) -> bytes:
    """The file's whole text, decompressed once and bounded (see _BoundedReader): both parsing attempts
    and the header below read this one copy, so a bad cell never makes us inflate a .gz again."""
    chunks = io.BytesIO()
    with _BoundedReader(path, _text_limit()) as reader:
        try:
            for chunk in iter(lambda: reader.read(1 << 20), b""):
                chunks.write(chunk)
        except (UnicodeDecodeError, OSError, EOFError) as exc:
            raise DataError(f"{path}: not a readable CSV text file ({type(exc).__name__}: {exc})") from None
    return chunks.getvalue()


def _parse(path: Path, text: bytes, dtype) -> pd.DataFrame:
    """pandas.read_csv, strictly: no row may have more fields than the header (pandas would otherwise turn
    the first row's extra fields into an index), and only empty cells are missing ('nan' and 'NA' are
    text, reported as what they are)."""
    import pandas as pd

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", pd.errors.DtypeWarning)  # mixed types: diagnosed cell by cell later
            warnings.simplefilter("error", pd.errors.ParserWarning)  # a first row longer than the header
            # numpy's "invalid value encountered in cast" as pandas tries a huge or infinite cell as int16:
            # the loose parse that follows names that cell in bp-train's own one-line error
            warnings.filterwarnings("ignore", "invalid value encountered in cast", RuntimeWarning)
            return pd.read_csv(
                io.BytesIO(text),
                dtype=dtype,
                encoding="utf-8",
                skip_blank_lines=False,
                index_col=False,
                keep_default_na=False,
                na_values=[""],
            )
    except pd.errors.ParserError as exc:
        detail = str(exc).strip().splitlines()[-1]
        match = re.search(r"line (\d+), saw (\d+)", detail)
        if match:
            detail = f"line {match.group(1)}: {match.group(2)} fields, more than the header's"
        raise DataError(f"{path}: not a valid digit CSV: {detail}") from None
    except pd.errors.ParserWarning:
        raise DataError(f"{path}: not a valid digit CSV: line 2: more fields than the header's") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty; expected a header 'label,pixel0,...,pixel783'") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a readable CSV text file ({type(exc).__name__}: {exc})") from None


def _header(path: Path, text: bytes) -> list[str]:
    """The header's names exactly as the file writes them (pandas renames a repeated one 'pixel3.1')."""
    import pandas as pd

    try:
        first = pd.read_csv(io.BytesIO(text), header=None, nrows=1, dtype=str, encoding="utf-8", keep_default_na=False)
    except pd.errors.EmptyDataError:  # a header of blanks only, e.g. a single tab
        raise DataError(f"{path}: line 1: no column names; expected a header 'label,pixel0,...,pixel783'") from None
    return list(first.iloc[0])


def read_csv(path: str | os.PathLike, require_labels: bool = False) -> Digits:
    """Parse and check a digit CSV (plain or .gz). Every problem names the file, line and column."""
    import pandas as pd

    path = Path(path)
    if problem := unreadable(path):
        raise DataError(problem)
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty; expected a header 'label,pixel0,...,pixel783' and rows")
    text = _read_text(path)
    try:
        # Fast and small: clean files parse straight into int16 (a quarter of int64's memory).
        frame = _parse(path, text, np.int16)
    except (ValueError, OverflowError):
        # Some cell is empty, not a whole number or huge: parse loosely, then find and name it.
        frame = _parse(path, text, None)

    columns = [str(c).strip() for c in _header(path, text)]
    if len(columns) != len(frame.columns):
        raise DataError(f"{path}: line 1: the header could not be read as {len(frame.columns)} columns")
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        places = [i + 1 for i, c in enumerate(columns) if c == repeated[0]]
        raise DataError(
            f"{path}: line 1: column {repeated[0]!r} appears {len(places)} times (columns "
            f"{', '.join(map(str, places))}); each column may appear once"
        )
    frame.columns = columns
    has_label = "label" in columns
    if require_labels and not has_label:
        raise DataError(f"{path}: line 1: no 'label' column; a training or evaluation file needs one")
    pixel_columns = _pixel_order([c for c in columns if c != "label"], path)
    if len(frame) == 0:
        raise DataError(f"{path}: the file has a header but no rows")

    if all(pd.api.types.is_integer_dtype(frame[c]) for c in pixel_columns):
        pixels = frame[pixel_columns].to_numpy()  # the fast path: pandas already parsed clean integers
        if pixels.min() < 0 or pixels.max() > 255:
            _first_bad(frame, pixel_columns, 0, 255, path, "a pixel")
    else:
        pixels = _first_bad(frame, pixel_columns, 0, 255, path, "a pixel")
    images = np.ascontiguousarray(pixels, dtype=np.uint8)
    labels = None
    if has_label:
        labels = _first_bad(frame, ["label"], 0, 9, path, "a digit label")[:, 0].astype(np.uint8)
    return Digits(images, labels, str(path))


def read_labels(path: str | os.PathLike, rows: int) -> np.ndarray:
    """Labels from an 'ImageId,Label' CSV (the submission format), one per image, in ImageId order."""
    path = Path(path)
    if problem := unreadable(path, "labels file"):
        raise DataError(problem)
    frame = _parse(path, _read_text(path), None)
    if [str(c).strip() for c in frame.columns] != ["ImageId", "Label"]:
        raise DataError(f"{path}: line 1: expected the header 'ImageId,Label'")
    labels = _first_bad(frame, ["Label"], 0, 9, path, "a digit label")[:, 0].astype(np.uint8)
    ids = _first_bad(frame, ["ImageId"], 1, rows, path, "an ImageId")[:, 0].astype(np.int64)
    if len(labels) != rows or not np.array_equal(np.sort(ids), np.arange(1, rows + 1)):
        raise DataError(
            f"{path}: has {len(labels)} labels with ImageIds that do not match the {rows} images "
            f"(expected ImageId 1..{rows}, each once)"
        )
    result = np.empty(rows, dtype=np.uint8)
    result[ids - 1] = labels
    return result


# --- the cache -------------------------------------------------------------------------------------------


def cache_dir() -> Path:
    if os.environ.get("BP_TRAIN_CACHE"):
        return Path(os.environ["BP_TRAIN_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "bp-train"


def cache_path(path: Path) -> Path:
    """Where the parsed arrays of `path` are cached: the key changes whenever the file does."""
    stat = path.stat()
    key = f"{CACHE_FORMAT}:{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_dir() / f"{path.name}-{digest}.npz"


def load_digits(path: str | os.PathLike, require_labels: bool = False, cache: bool = True) -> Digits:
    """Read a digit CSV (or its .gz, see `resolve`), from the cache when an up-to-date one exists
    (cache=False always parses)."""
    path = resolve(path)
    if not cache or not path.is_file():
        return read_csv(path, require_labels)
    cached = cache_path(path)
    if cached.is_file():
        try:
            with np.load(cached, allow_pickle=False) as arrays:
                labels = arrays["labels"] if "labels" in arrays.files else None
                digits = Digits(arrays["images"], labels, str(path))
            if require_labels and labels is None:
                raise DataError(f"{path}: line 1: no 'label' column; a training or evaluation file needs one")
            return digits
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache is only a cache: parse the CSV again below
    digits = read_csv(path, require_labels)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        arrays = {"images": digits.images}
        if digits.labels is not None:
            arrays["labels"] = digits.labels
        with atomic_path(cached) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
    except OSError:
        pass  # an unwritable cache folder only costs speed
    return digits


# --- splitting and batching --------------------------------------------------------------------------
def split(digits: Digits, val_fraction: float, seed: int) -> tuple[Digits, Digits | None]:
    """A reproducible random split into training and validation rows (same seed, same split)."""
    n_val = int(round(len(digits) * val_fraction))
    if n_val == 0:
        return digits, None
    if n_val >= len(digits):
        raise DataError(f"{digits.source}: {len(digits)} rows are too few for val_fraction {val_fraction}")
    order = np.random.default_rng([seed, 3]).permutation(len(digits))
    return digits.subset(np.sort(order[n_val:])), digits.subset(np.sort(order[:n_val]))


def check_labels(labels: np.ndarray, classes: int, source: str) -> None:
    """Every label must be one of the network's outputs: a 3-class model cannot score a digit 9."""
    if len(labels) and int(labels.max()) >= classes:
        raise DataError(
            f"{source} has label {int(labels.max())}, but the model has {classes} outputs "
            f"(model.output_size); it needs one per class"
        )


def sample_rows(
    path: str | os.PathLike, count: int, seed: int, cache: bool = True, dtype=np.float64, classes: int = 10
):
    """`count` random labelled rows of a CSV as (x in [0, 1], labels, description); seeded random pixels
    and labels when the file does not exist (so gradient checks work before any data is fetched). Labels
    beyond `classes` (the network's outputs) are an error naming the file."""
    rng = np.random.default_rng([seed, 4])
    path = resolve(path)
    if path.is_file():
        digits = load_digits(path, require_labels=True, cache=cache)
        check_labels(digits.labels, classes, str(path))
        rows = rng.choice(len(digits), size=min(count, len(digits)), replace=False)
        return to_float(digits.images[rows], dtype), digits.labels[rows].astype(np.intp), f"{len(rows)} rows of {path}"
    x = rng.random((count, PIXELS)).astype(dtype)
    return x, rng.integers(0, min(classes, 10), count), f"{count} seeded random inputs ({path} not found)"


class Shuffler:
    """Mini-batches for one epoch after another: every row exactly once per epoch, in a fresh order.

    Each epoch copies the rows once, in shuffled order, into a buffer kept for the whole run; the batches
    are then contiguous slices of it. One sequential copy per epoch is cheaper than gathering scattered
    rows for every batch, and the matrix products run faster on contiguous input.
    """

    def __init__(self, x: np.ndarray, t: np.ndarray, batch_size: int, rng: np.random.Generator):
        self.x, self.t, self.batch_size, self.rng = x, t, batch_size, rng
        self.x_buffer, self.t_buffer = np.empty_like(x), np.empty_like(t)

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def epoch(self):
        order = like(self.x, self.rng.permutation(len(self.x)))  # drawn on the host, moved to the rows' device
        np.take(self.x, order, axis=0, out=self.x_buffer)
        np.take(self.t, order, axis=0, out=self.t_buffer)
        for start in range(0, len(self.x), self.batch_size):
            stop = start + self.batch_size
            yield self.x_buffer[start:stop], self.t_buffer[start:stop]

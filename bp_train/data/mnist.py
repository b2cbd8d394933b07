"""MNIST in its original IDX format: download, verify, convert to Kaggle-style CSV.

IDX is a tiny binary format: a 4-byte magic number (two zero bytes, a type code -- 0x08 for unsigned
bytes -- and the number of dimensions), then each dimension as a big-endian 32-bit integer, then the data.
The official files are gzipped; their MD5s below are of the decompressed content.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError, unreadable
from ..files.store import atomic_path

MIRRORS = (  # the public mirrors torchvision and TensorFlow use, in that order
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
FILES = {
    "train-images-idx3-ubyte.gz": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte.gz": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte.gz": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte.gz": "27ae3e4e09519cfbb04c329615203637",
}
# Each file's size once decompressed: what a download and its decompression are bounded by (a mirror that
# sends more -- a gzip bomb, /dev/zero, an endless server -- is cut off there). No gzip of a file is
# larger than the file plus a small overhead, whatever its compression level.
RAW_BYTES = {
    "train-images-idx3-ubyte.gz": 47_040_016,
    "train-labels-idx1-ubyte.gz": 60_008,
    "t10k-images-idx3-ubyte.gz": 7_840_016,
    "t10k-labels-idx1-ubyte.gz": 10_008,
}
GZIP_MAGIC = b"\x1f\x8b"
CHUNK = 1 << 16
MAX_IDX_BYTES = 100_000_000  # MNIST's training images are 47 MB; anything this large is not digits


# --- IDX ---------------------------------------------------------------------------------------------


def read_bytes(path: str | os.PathLike) -> bytes:
    """The file's content, gunzipped if it is gzip (by its magic bytes, whatever its name)."""
    path = Path(path)
    if problem := unreadable(path):
        raise DataError(problem)
    if path.stat().st_size > MAX_IDX_BYTES:
        raise DataError(f"{path}: {path.stat().st_size:,} bytes; an IDX file of digits is at most {MAX_IDX_BYTES:,}")
    raw = path.read_bytes()
    if raw[:2] != GZIP_MAGIC:
        return raw
    try:
        # decompress in steps, so that a small file that inflates to gigabytes is stopped at the limit
        inflater = zlib.decompressobj(wbits=31)
        content = inflater.decompress(raw, MAX_IDX_BYTES + 1)
        if len(content) > MAX_IDX_BYTES:
            raise DataError(
                f"{path}: inflates to more than {MAX_IDX_BYTES:,} bytes; an IDX file of digits is "
                "smaller (MNIST's largest is 47 MB)"
            )
        if not inflater.eof:
            raise EOFError("compressed data ended before the end-of-stream marker")
        return content
    except (EOFError, OSError, zlib.error) as exc:
        raise DataError(f"{path}: damaged or truncated gzip file ({exc})") from None


def parse_idx(content: bytes, source: str, ndim: int) -> np.ndarray:
    """Check an IDX header (magic, dimensions, size) and return the uint8 array it describes."""
    if len(content) < 4 or content[0] != 0 or content[1] != 0:
        raise DataError(f"{source}: not an IDX file (bad magic number {content[:4].hex() or 'empty'})")
    if content[2] != 0x08:
        raise DataError(f"{source}: IDX type code 0x{content[2]:02x}; only unsigned bytes (0x08) are digits")
    if content[3] != ndim:
        what = "images (3 dimensions)" if ndim == 3 else "labels (1 dimension)"
        raise DataError(f"{source}: IDX file has {content[3]} dimension(s); expected {what}")
    header = 4 + 4 * ndim
    if len(content) < header:
        raise DataError(f"{source}: IDX header truncated")
    dims = tuple(int(d) for d in np.frombuffer(content, dtype=">u4", count=ndim, offset=4))
    if 0 in dims:
        raise DataError(
            f"{source}: the IDX header says {' x '.join(map(str, dims))}: it holds no "
            f"{'images' if ndim == 3 else 'labels'}"
        )
    expected = int(np.prod(dims)) + header
    if len(content) != expected:
        raise DataError(
            f"{source}: IDX header says {' x '.join(map(str, dims))} = {expected - header} bytes of "
            f"data, the file has {len(content) - header}"
        )
    return np.frombuffer(content, dtype=np.uint8, offset=header).reshape(dims)


def read_pair(images_path, labels_path=None) -> tuple[np.ndarray, np.ndarray | None]:
    """Images (N, 784) and labels (N,) from an IDX pair, checked against each other."""
    images = parse_idx(read_bytes(images_path), str(images_path), 3)
    images = images.reshape(len(images), -1)
    if labels_path is None:
        return images, None
    labels = parse_idx(read_bytes(labels_path), str(labels_path), 1)
    if len(labels) != len(images):
        raise DataError(f"{labels_path}: {len(labels)} labels for the {len(images)} images of {images_path}")
    if labels.size and labels.max() > 9:
        raise DataError(f"{labels_path}: label {labels.max()} at item {int(np.argmax(labels > 9))}; expected 0..9")
    return images, labels


# --- CSV ---------------------------------------------------------------------------------------------

_NUMBERS = [str(i) for i in range(256)]


def write_digit_csv(path, images: np.ndarray, labels: np.ndarray | None) -> None:
    """Kaggle format: header `label,pixel0..pixel783` (no label column without labels), written atomically."""
    header = ",".join((["label"] if labels is not None else []) + [f"pixel{i}" for i in range(images.shape[1])])
    rows = images.tolist() if labels is None else np.column_stack([labels, images]).tolist()
    with atomic_path(path) as tmp, open(tmp, "w", encoding="ascii", newline="\n") as out:
        out.write(header + "\n")
        for start in range(0, len(rows), 1000):
            out.write("".join(",".join(map(_NUMBERS.__getitem__, row)) + "\n" for row in rows[start : start + 1000]))


def write_labels_csv(path, labels: np.ndarray) -> None:
    """`ImageId,Label` with ImageId from 1: the submission format, usable by `evaluate --labels`."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="ascii", newline="\n") as out:
        out.write("ImageId,Label\n")
        out.writelines(f"{i},{label}\n" for i, label in enumerate(labels.tolist(), start=1))


# --- downloading -------------------------------------------------------------------------------------


def download(url: str, destination: Path, md5: str, progress=None) -> None:
    """Fetch `url` to `destination`, keeping it only if its decompressed MD5 is `md5`; no more is read,
    nor inflated, than the file can be (RAW_BYTES)."""
    raw_bytes = RAW_BYTES.get(destination.name, MAX_IDX_BYTES)
    limit = raw_bytes + raw_bytes // 100 + 65_536
    with atomic_path(destination) as tmp:
        try:
            with urllib.request.urlopen(url, timeout=30) as response, open(tmp, "wb") as out:
                size = response.headers.get("Content-Length")
                bar = progress(int(size) if size and size.isdigit() else None, destination.name) if progress else None
                received = 0
                try:
                    while chunk := response.read(CHUNK):
                        received += len(chunk)
                        if received > limit:
                            raise DataError(
                                f"{url}: the mirror sent more than {limit:,} bytes, more than "
                                f"{destination.name} can be; stopped there"
                            )
                        out.write(chunk)
                        if bar is not None:
                            bar.update(len(chunk))
                finally:
                    if bar is not None:
                        bar.close()
        except urllib.error.HTTPError as exc:
            raise DataError(f"{url}: the mirror answered HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise DataError(f"{url}: unreachable ({getattr(exc, 'reason', exc)})") from None
        content = Path(tmp).read_bytes()
        if content[:2] != GZIP_MAGIC:
            looks = "an HTML page" if content.lstrip()[:1] == b"<" else "not a gzip file"
            raise DataError(f"{url}: the mirror sent {looks}, not {destination.name}")
        try:
            inflater = zlib.decompressobj(wbits=31)
            inflated = inflater.decompress(content, raw_bytes + 1)  # a gzip bomb stops at the file's size
            if len(inflated) > raw_bytes:
                raise DataError(
                    f"{url}: inflates to more than {raw_bytes:,} bytes, more than {destination.name} is; not MNIST"
                )
            if not inflater.eof:
                raise EOFError("compressed data ended before the end-of-stream marker")
            digest = hashlib.md5(inflated).hexdigest()
        except (EOFError, OSError, zlib.error) as exc:
            raise DataError(f"{url}: truncated or damaged download ({exc})") from None
        if digest != md5:
            raise DataError(f"{url}: checksum mismatch (MD5 {digest}, expected {md5})")


def fetch(dest: str | os.PathLike, mirrors=MIRRORS, progress=None, log=print, files=FILES) -> dict[str, Path]:
    """Download the four MNIST files (trying each mirror in turn) into dest/mnist/, then write
    dest/train.csv, dest/test.csv and dest/test_labels.csv. `files` maps names to decompressed MD5s."""
    dest = Path(dest)
    raw = dest / "mnist"
    raw.mkdir(parents=True, exist_ok=True)
    for name, md5 in files.items():
        target = raw / name
        if target.is_file() and hashlib.md5(read_bytes(target)).hexdigest() == md5:
            continue  # already here and verified
        failures = []
        for mirror in mirrors:
            try:
                download(mirror.rstrip("/") + "/" + name, target, md5, progress)
                break
            except DataError as exc:
                failures.append(str(exc))
        else:
            raise DataError(
                f"could not download {name} (" + "; ".join(failures) + "). Without a network: put the "
                f"Kaggle train.csv(.gz) and test.csv(.gz) in {dest}/, or fetch from a local copy "
                "with --mirror file:///path/to/mnist/"
            )
    log(f"verified the four MNIST files in {raw}")
    train_images, train_labels = read_pair(raw / "train-images-idx3-ubyte.gz", raw / "train-labels-idx1-ubyte.gz")
    test_images, test_labels = read_pair(raw / "t10k-images-idx3-ubyte.gz", raw / "t10k-labels-idx1-ubyte.gz")
    written = {"train": dest / "train.csv", "test": dest / "test.csv", "test_labels": dest / "test_labels.csv"}
    write_digit_csv(written["train"], train_images, train_labels)
    write_digit_csv(written["test"], test_images, None)
    write_labels_csv(written["test_labels"], test_labels)
    log(
        f"wrote {written['train']} ({len(train_images):,} labelled rows), {written['test']} "
        f"({len(test_images):,} unlabelled rows) and {written['test_labels']}"
    )
    return written

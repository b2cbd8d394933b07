"""MNIST download and IDX conversion, offline: file:// mirrors and a small HTTP server on 127.0.0.1."""

import functools
import gzip
import hashlib
import http.server
import threading

import numpy as np
import pytest
from conftest import MNIST, needs_shared, run_cli, synthetic_digits

from bp_train.data.digits import read_csv, read_labels
from bp_train.data.mnist import FILES, fetch, parse_idx, read_pair
from bp_train.errors import DataError


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    return header + array.astype(np.uint8).tobytes()


@pytest.fixture
def small_mnist(tmp_path):
    """A mirror folder with MNIST-format files of a few synthetic digits, and their MD5 table."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    images, labels = synthetic_digits(30, seed=4)
    test_images, test_labels = synthetic_digits(12, seed=5)
    contents = {
        "train-images-idx3-ubyte.gz": idx_bytes(images.reshape(-1, 28, 28)),
        "train-labels-idx1-ubyte.gz": idx_bytes(labels),
        "t10k-images-idx3-ubyte.gz": idx_bytes(test_images.reshape(-1, 28, 28)),
        "t10k-labels-idx1-ubyte.gz": idx_bytes(test_labels),
    }
    for name, content in contents.items():
        (mirror / name).write_bytes(gzip.compress(content))
    md5s = {name: hashlib.md5(content).hexdigest() for name, content in contents.items()}
    return mirror, md5s, (images, labels, test_images, test_labels)


@pytest.fixture
def http_mirror(tmp_path):
    """Serve a folder on 127.0.0.1 for the duration of a test."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(QuietHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def quiet(*args):
    pass


def test_fetch_over_http_writes_kaggle_csvs(tmp_path, small_mnist, http_mirror):
    mirror, md5s, (images, labels, test_images, test_labels) = small_mnist
    served, url = http_mirror
    for f in mirror.iterdir():
        (served / f.name).write_bytes(f.read_bytes())
    written = fetch(tmp_path / "data", [url], files=md5s, log=quiet)
    train = read_csv(written["train"], require_labels=True)
    test = read_csv(written["test"])
    assert np.array_equal(train.images, images) and np.array_equal(train.labels, labels)
    assert test.labels is None and np.array_equal(test.images, test_images)
    assert np.array_equal(read_labels(written["test_labels"], 12), test_labels)


@pytest.mark.parametrize(
    "damage, message",
    [
        ("checksum", "checksum mismatch"),
        ("html", "sent an HTML page"),
        ("truncated", "truncated or damaged download"),
        ("missing", "answered HTTP 404"),
    ],
)
def test_a_bad_mirror_gives_a_clear_message_and_leaves_no_partial_file(
    tmp_path, small_mnist, http_mirror, damage, message
):
    mirror, md5s, _ = small_mnist
    served, url = http_mirror
    for f in mirror.iterdir():
        (served / f.name).write_bytes(f.read_bytes())
    target = served / "train-images-idx3-ubyte.gz"
    if damage == "checksum":
        target.write_bytes(gzip.compress(b"\0\0\x08\x03 something else"))
    elif damage == "html":
        target.write_bytes(b"<!DOCTYPE html><html><body>404 Not Found</body></html>")
    elif damage == "truncated":
        target.write_bytes(target.read_bytes()[:200])
    else:
        target.unlink()
    dest = tmp_path / "data"
    with pytest.raises(DataError, match=message):
        fetch(dest, [url], files=md5s, log=quiet)
    assert not (dest / "mnist" / "train-images-idx3-ubyte.gz").exists()
    assert not [p for p in (dest / "mnist").iterdir() if p.name.endswith(".tmp")]
    assert not (dest / "train.csv").exists()


def test_an_unreachable_mirror_falls_through_to_the_next(tmp_path, small_mnist):
    mirror, md5s, _ = small_mnist
    written = fetch(tmp_path / "data", ["http://127.0.0.1:9/", mirror.as_uri() + "/"], files=md5s, log=quiet)
    assert written["train"].is_file()


@needs_shared
def test_fetch_from_the_local_copy_of_real_mnist(tmp_path):
    result = run_cli(
        "data", "fetch", "--dest", tmp_path / "data", "--mirror", MNIST.as_uri() + "/", "--no-default-mirrors"
    )
    assert result.exit_code == 0, result.output
    train = read_csv(tmp_path / "data" / "train.csv", require_labels=True)
    assert train.images.shape == (60000, 784) and np.bincount(train.labels).min() > 5000
    images, labels = read_pair(MNIST / "train-images-idx3-ubyte.gz", MNIST / "train-labels-idx1-ubyte.gz")
    assert np.array_equal(train.images, images) and np.array_equal(train.labels, labels)
    assert len((tmp_path / "data" / "test_labels.csv").read_text().splitlines()) == 10001


def test_convert_round_trips_an_idx_pair(tmp_path):
    images, labels = synthetic_digits(9, seed=6)
    (tmp_path / "i.idx").write_bytes(idx_bytes(images.reshape(-1, 28, 28)))
    (tmp_path / "l.idx.gz").write_bytes(gzip.compress(idx_bytes(labels)))
    result = run_cli(
        "data",
        "convert",
        "--images",
        tmp_path / "i.idx",
        "--labels",
        tmp_path / "l.idx.gz",
        "--out",
        tmp_path / "out.csv",
    )
    assert result.exit_code == 0, result.output
    digits = read_csv(tmp_path / "out.csv", require_labels=True)
    assert np.array_equal(digits.images, images) and np.array_equal(digits.labels, labels)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"\x01\x02\x08\x03" + b"\0" * 12, "bad magic number"),
        (bytes([0, 0, 0x0D, 3]) + b"\0" * 12, "type code 0x0d"),
        (bytes([0, 0, 8, 1]) + np.array([5], ">u4").tobytes() + b"\0" * 5, "expected images"),
        (bytes([0, 0, 8, 3]) + np.array([2, 28, 28], ">u4").tobytes() + b"\0" * 100, "2 x 28 x 28 = 1568 bytes"),
        (b"", "bad magic number"),
    ],
)
def test_idx_headers_are_validated(content, message):
    with pytest.raises(DataError, match=message):
        parse_idx(content, "f.idx", 3)


def test_label_count_must_match_image_count(tmp_path):
    images, labels = synthetic_digits(5)
    (tmp_path / "i").write_bytes(idx_bytes(images.reshape(-1, 28, 28)))
    (tmp_path / "l").write_bytes(idx_bytes(labels[:4]))
    with pytest.raises(DataError, match="4 labels for the 5 images"):
        read_pair(tmp_path / "i", tmp_path / "l")


def test_fetch_refuses_a_mirror_that_is_not_a_url():
    result = run_cli("data", "fetch", "--mirror", "/some/folder")
    assert result.exit_code == 2 and "expected an http://, https:// or file:// URL" in result.stderr


def test_the_official_checksums_are_the_published_ones():
    assert FILES["train-images-idx3-ubyte.gz"] == "6bbc9ace898e44ae57da46a324031adb"
    assert FILES["t10k-labels-idx1-ubyte.gz"] == "27ae3e4e09519cfbb04c329615203637"

"""The digit CSV reader: good files in every accepted form, every bad one refused with file, line and
column, and nothing written or clobbered on the way out."""

import gzip

import numpy as np
import pytest
from conftest import run_cli, synthetic_digits, write_digit_csv

from bp_train.data.digits import Digits, Shuffler, load_digits, read_csv, split, to_float
from bp_train.errors import DataError

images, labels = synthetic_digits(30, seed=1)


def good_text(rows=5):
    header = "label," + ",".join(f"pixel{i}" for i in range(784))
    return "\n".join([header] + [",".join(map(str, [labels[r], *images[r]])) for r in range(rows)]) + "\n"


def test_reads_labels_and_pixels_exactly(tmp_path):
    digits = read_csv(write_digit_csv(tmp_path / "a.csv", images, labels))
    assert digits.images.dtype == np.uint8 and digits.images.shape == (30, 784)
    assert np.array_equal(digits.images, images) and np.array_equal(digits.labels, labels)


@pytest.mark.parametrize("variant", ["gz", "one_based", "crlf", "bom", "label_last", "unlabelled"])
def test_accepted_variants_read_the_same_digits(tmp_path, variant):
    path = tmp_path / "v.csv"
    if variant == "gz":
        write_digit_csv(tmp_path / "plain.csv", images, labels)
        path = tmp_path / "v.csv.gz"
        path.write_bytes(gzip.compress((tmp_path / "plain.csv").read_bytes()))
    elif variant == "one_based":
        write_digit_csv(path, images, labels, first_pixel=1)
    elif variant == "crlf":
        write_digit_csv(path, images, labels, newline="\r\n")
    elif variant == "bom":
        write_digit_csv(path, images, labels, bom=True)
    elif variant == "label_last":
        header = ",".join(f"pixel{i}" for i in range(784)) + ",label"
        path.write_text("\n".join([header] + [",".join(map(str, [*images[r], labels[r]])) for r in range(30)]) + "\n")
    else:
        write_digit_csv(path, images, None)
    digits = read_csv(path)
    assert np.array_equal(digits.images, images)
    assert digits.labels is None if variant == "unlabelled" else np.array_equal(digits.labels, labels)


CELL_EDITS = {  # case -> (line index in the file, column index, new cell text)
    "non_numeric": (3, 101, "abc"),
    "empty_cell": (2, 5, ""),
    "fraction": (4, 9, "12.5"),
    "pixel_too_big": (2, 301, "256"),
    "pixel_negative": (5, 1, "-1"),
    "label_out_of_range": (3, 0, "10"),
}


def bad_file(tmp_path, case):
    path = tmp_path / "bad.csv"
    text = good_text()
    lines = text.splitlines()
    if case == "empty":
        text = ""
    elif case == "header_only":
        text = lines[0] + "\n"
    elif case == "missing_pixel_column":
        text = "\n".join(",".join(line.split(",")[:-1]) for line in lines) + "\n"
    elif case == "extra_column":
        text = "\n".join([lines[0] + ",notes"] + [line + ",x" for line in lines[1:]]) + "\n"
    elif case == "extra_pixel_column":
        text = "\n".join([lines[0] + ",pixel784"] + [line + ",0" for line in lines[1:]]) + "\n"
    elif case in CELL_EDITS:
        line, column, value = CELL_EDITS[case]
        cells = lines[line].split(",")
        cells[column] = value
        lines[line] = ",".join(cells)
        text = "\n".join(lines) + "\n"
    elif case == "too_many_fields":
        lines[2] += ",7"
        text = "\n".join(lines) + "\n"
    elif case == "not_csv":
        path.write_bytes(bytes(range(256)) * 20)
        return path
    elif case == "no_label":
        write_digit_csv(path, images, None)
        return path
    path.write_text(text)
    return path


BAD = {  # case -> what the message must say (file name is checked for all)
    "empty": "empty",
    "header_only": "header but no rows",
    "missing_pixel_column": "line 1: 1 pixel column\\(s\\) missing, first pixel783",
    "extra_column": "line 1: unexpected column 'notes'",
    "extra_pixel_column": "line 1: extra pixel column pixel784",
    "non_numeric": "line 4, column 'pixel100': the value is 'abc', not a number",
    "empty_cell": "line 3, column 'pixel4': the value is empty",
    "fraction": "line 5, column 'pixel8': the value is 12.5; expected a whole number 0..255",
    "pixel_too_big": "line 3, column 'pixel300': the value is '?256'?; expected a whole number 0..255",
    "pixel_negative": "line 6, column 'pixel0': the value is '?-1'?",
    "label_out_of_range": "line 4, column 'label': the value is '?10'?; expected a whole number 0..9",
    "too_many_fields": "line 3: 786 fields",
    "not_csv": "not a",
    "no_label": "no 'label' column",
}


@pytest.mark.parametrize("case", BAD)
def test_bad_csv_is_refused_naming_file_and_place(tmp_path, case):
    path = bad_file(tmp_path, case)
    with pytest.raises(DataError, match=BAD[case]) as error:
        read_csv(path, require_labels=True)
    assert str(path) in str(error.value)


@pytest.mark.parametrize("case", ["missing_file", *BAD])
def test_fit_on_a_bad_csv_exits_2_with_one_line_and_writes_nothing(tmp_path, case):
    path = tmp_path / "absent.csv" if case == "missing_file" else bad_file(tmp_path, case)
    run_dir = tmp_path / "run"
    result = run_cli("fit", "--data", path, "--out", run_dir, "--epochs", "1", "--quiet")
    assert result.exit_code == 2, result.output
    assert str(path) in result.stderr and result.stderr.count("\n") == 1
    assert "Traceback" not in result.output
    assert not (run_dir / "model.npz").exists()


def test_cache_makes_the_second_load_identical_and_notices_a_changed_file(tmp_path):
    path = write_digit_csv(tmp_path / "c.csv", images, labels)
    first = load_digits(path)
    again = load_digits(path)
    assert np.array_equal(first.images, again.images) and np.array_equal(first.labels, again.labels)
    changed = images.copy()
    changed[0, 0] = 200
    write_digit_csv(path, changed, labels)
    import os

    os.utime(path, ns=(1, 2))  # a different mtime, as any edit gives
    assert load_digits(path).images[0, 0] == 200


def test_cache_is_never_trusted_over_a_bad_file(tmp_path):
    path = bad_file(tmp_path, "pixel_too_big")
    for _ in range(2):
        with pytest.raises(DataError):
            load_digits(path)


def test_to_float_scales_to_unit_interval_in_float32():
    x = to_float(np.array([[0, 51, 255]], dtype=np.uint8))
    assert x.dtype == np.float32 and np.allclose(x, [[0, 0.2, 1]])


def test_split_is_reproducible_disjoint_and_complete():
    digits = Digits(np.arange(1000, dtype=np.uint8).reshape(-1, 1).repeat(2, 1), np.zeros(1000, np.uint8))
    train, val = split(digits, 0.1, seed=7)
    again, _ = split(digits, 0.1, seed=7)
    other, _ = split(digits, 0.1, seed=8)
    assert len(val) == 100 and len(train) == 900
    assert np.array_equal(train.images, again.images) and not np.array_equal(train.images, other.images)
    assert len(set(train.images[:, 0]) | set(val.images[:, 0])) == 256  # uint8 values: all covered


def test_each_epoch_visits_every_row_once_in_a_new_order():
    x = np.arange(1050 * 2, dtype=np.float32).reshape(1050, 2)
    t = np.arange(1050) % 10
    shuffler = Shuffler(x, t, 100, np.random.default_rng(0))
    orders = []
    for _ in range(2):
        batches = list(shuffler.epoch())
        assert len(batches) == len(shuffler) == 11 and len(batches[-1][0]) == 50
        rows = np.concatenate([xb[:, 0] for xb, _ in batches]) / 2
        labels = np.concatenate([tb for _, tb in batches])
        assert np.array_equal(np.sort(rows), np.arange(1050))  # every row exactly once
        assert np.array_equal(labels, rows.astype(int) % 10)  # labels travel with their rows
        orders.append(rows)
    assert not np.array_equal(orders[0], orders[1])

"""`bp-train data fetch` and `data convert`: MNIST as Kaggle-style CSVs."""

from __future__ import annotations

import click

from .common import BadInput, Group, refuse_overwriting


@click.group(cls=Group)
def data():
    """Get digit data: download MNIST, or convert IDX files, to Kaggle-style CSV."""


@data.command()
@click.option(
    "--dest",
    default="data",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder for mnist/*.gz and the CSVs.",
)
@click.option(
    "--mirror",
    "mirrors",
    multiple=True,
    metavar="URL",
    help="A folder URL holding the four .gz files (http(s):// or file://), tried before the "
    "public mirrors (repeatable).",
)
@click.option("--no-default-mirrors", is_flag=True, help="Use only the --mirror URLs.")
def fetch(dest, mirrors, no_default_mirrors):
    """Download the official MNIST files, verify their MD5s, write train.csv, test.csv, test_labels.csv.

    \b
    Example (offline, from a local copy):
      bp-train data fetch --mirror file:///path/to/mnist/ --no-default-mirrors
    """
    from tqdm import tqdm

    from ..data.mnist import MIRRORS
    from ..data.mnist import fetch as run_fetch

    if no_default_mirrors and not mirrors:
        raise BadInput("--no-default-mirrors needs at least one --mirror URL")
    for url in mirrors:
        if not url.startswith(("http://", "https://", "file://")):
            raise BadInput(f"--mirror {url!r}: expected an http://, https:// or file:// URL")
    chosen = list(mirrors) + ([] if no_default_mirrors else list(MIRRORS))
    bar = lambda total, name: tqdm(total=total, unit="B", unit_scale=True, desc=name, leave=False)
    run_fetch(dest, chosen, progress=bar, log=click.echo)


@data.command()
@click.option("--images", required=True, type=click.Path(dir_okay=False), help="IDX images file (.gz or raw).")
@click.option("--labels", type=click.Path(dir_okay=False), help="IDX labels file; omit for an unlabelled CSV.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="CSV to write.")
def convert(images, labels, out):
    """Convert an IDX image (and label) file, MNIST or any MNIST-format set, to a Kaggle-style CSV."""
    from ..data.mnist import read_pair, write_digit_csv

    refuse_overwriting({"--out": out}, {"images file (--images)": images, "labels file (--labels)": labels})
    pixels, digits = read_pair(images, labels)
    write_digit_csv(out, pixels, digits)
    click.echo(f"wrote {out}: {len(pixels):,} rows" + (" with labels" if digits is not None else ""))


@data.command(name="check")
@click.argument("csv_file", metavar="CSV", type=click.Path(dir_okay=False))
@click.option(
    "--labelled/--unlabelled",
    default=None,
    help="Require a 'label' column (training data) or its absence (Kaggle's test.csv); default: either.",
)
@click.option("--pixels", default=784, show_default=True, type=click.IntRange(1), help="Pixels each row must have.")
@click.option(
    "--writable",
    "outputs",
    multiple=True,
    metavar="FILE",
    help="A file the next step will write (a submission): say now if it cannot be (repeatable).",
)
@click.option(
    "--kaggle-rows",
    type=click.IntRange(1),
    help="Warn (on stderr, exit 0) when the CSV has not this many rows: the Digit Recognizer's test.csv has "
    "28,000, and Kaggle refuses a submission of any other length.",
)
@click.option("--no-cache", is_flag=True, help="Always parse the CSV; do not read or write the parsed cache.")
def check(csv_file, labelled, pixels, outputs, kaggle_rows, no_cache):
    """Check a digit CSV before long work uses it: it parses, its rows have --pixels values (and a label,
    with --labelled), and each --writable file can be written. One line and exit 2 if not.

    \b
    Example (what `make kaggle` runs before training):
      bp-train data check data/test.csv --unlabelled --writable submission.csv --kaggle-rows 28000
    """
    from ..data.digits import load_digits, resolve
    from ..files.store import check_writable

    for output in outputs:
        refuse_overwriting({"--writable": output}, {"CSV": str(resolve(csv_file))})
        check_writable(output)
    digits = load_digits(csv_file, require_labels=bool(labelled), cache=not no_cache)
    if labelled is False and digits.labels is not None:
        raise BadInput(f"{csv_file}: has a 'label' column; a test file to predict has none (is it the training file?)")
    if digits.images.shape[1] != pixels:
        raise BadInput(f"{csv_file}: rows have {digits.images.shape[1]} pixels, expected {pixels}")
    rows = len(digits.images)
    if kaggle_rows and rows != kaggle_rows:
        click.echo(
            f"warning: {csv_file} has {rows:,} rows, not {kaggle_rows:,}: Kaggle's Digit Recognizer refuses a "
            f"submission of {rows:,} rows (is it the competition's test.csv?)",
            err=True,
        )
    labels = "" if digits.labels is None else f", labels {int(digits.labels.min())}-{int(digits.labels.max())}"
    click.echo(f"{csv_file}: {rows:,} rows of {pixels} pixels{labels}")

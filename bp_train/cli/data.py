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

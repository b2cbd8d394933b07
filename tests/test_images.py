"""A person's own digits: MNIST's preparation with known answers, `predict --image` end to end, every bad
image one line, and the saliency map equal to central differences of the class score."""

import json
import struct
import zlib

import numpy as np
import pytest
from conftest import run_cli, run_measured
from PIL import Image

from bp_train.data.images import BOX, centre_of_mass, prepare


def shape(size=40):
    """A synthetic 'digit': an L of thick strokes (not symmetric, so a flip or a misplacement shows)."""
    ink = np.zeros((size * 2, size), dtype=np.float64)
    ink[:, : size // 4] = 255
    ink[-size // 4 :, :] = 255
    return ink


def picture(ink, canvas=(240, 200), at=(30, 50), grey_paper=None, dark_on_light=False, alpha=False):
    height, width = canvas
    values = np.zeros((height, width))
    top, left = at
    values[top : top + ink.shape[0], left : left + ink.shape[1]] = ink
    if dark_on_light:
        values = 255 - values
    if grey_paper is not None:  # dark ink (20) on paper that is not white (grey_paper), with some grain
        grain = np.random.default_rng(1).normal(0, 3, values.shape)
        values = grey_paper - values / 255 * (grey_paper - 20) + grain
    if alpha:  # black strokes on a transparent canvas: the colour is black everywhere, the ink is in alpha
        rgba = np.zeros((height, width, 4), np.uint8)
        rgba[..., 3] = np.clip(255 - values, 0, 255) if dark_on_light else values
        return Image.fromarray(rgba, "RGBA")
    return Image.fromarray(np.clip(values, 0, 255).astype(np.uint8), "L")


VARIANTS = {
    "white on black": dict(),
    "shifted": dict(at=(120, 10)),
    "scaled up": dict(ink_size=70, canvas=(300, 260)),
    "dark ink on light paper": dict(dark_on_light=True),
    "dark ink on grey paper": dict(grey_paper=190),
    "transparent canvas": dict(alpha=True, dark_on_light=True),
}


def make(tmp_path, name, ink_size=40, **kwargs):
    path = tmp_path / f"{name.replace(' ', '-')}.png"
    picture(shape(ink_size), **kwargs).save(path)
    return path


def test_the_preparation_gives_the_same_28x28_however_the_digit_was_drawn(tmp_path):
    reference = prepare(make(tmp_path, "reference")).pixels
    for name, options in VARIANTS.items():
        prepared = prepare(make(tmp_path, name, **options)).pixels
        # within a tolerance: resampling a shifted or scaled shape moves its grey edges a little
        assert (
            np.abs(prepared - reference).mean() < 6 and np.corrcoef(prepared.ravel(), reference.ravel())[0, 1] > 0.97
        ), name


@pytest.mark.parametrize("name", list(VARIANTS))
def test_the_digit_fits_a_20x20_box_with_its_centre_of_mass_at_the_centre(name, tmp_path):
    options = dict(VARIANTS[name])
    pixels = prepare(make(tmp_path, name, **options)).pixels
    rows, cols = np.nonzero(pixels > 0)
    assert rows.max() - rows.min() + 1 <= BOX and cols.max() - cols.min() + 1 <= BOX
    assert max(rows.max() - rows.min() + 1, cols.max() - cols.min() + 1) == BOX  # the longer side fills it
    row, col = centre_of_mass(pixels)
    assert abs(row - 13.5) <= 0.5 and abs(col - 13.5) <= 0.5
    assert pixels.max() == pytest.approx(255) and pixels.min() == 0  # white ink on a black field


def test_dark_ink_is_inverted_and_light_ink_is_not(tmp_path):
    dark = prepare(make(tmp_path, "dark", dark_on_light=True))
    light = prepare(make(tmp_path, "light"))
    assert dark.notes == ["inverted (dark ink on light paper)"] and light.notes == []
    assert np.allclose(dark.pixels, light.pixels, atol=1)


def trained_model(tmp_path, digits_csv, extra=()):
    model = tmp_path / "run"
    result = run_cli("fit", "--data", digits_csv, "--epochs", "2", "--out", model, "--quiet", *extra)
    assert result.exit_code == 0, result.stderr
    return model / "model.npz"


def test_predict_image_reads_files_and_folders_and_writes_what_it_is_asked(tmp_path, digits_csv):
    model = trained_model(tmp_path, digits_csv)
    folder = tmp_path / "pictures"
    folder.mkdir()
    for name in ("a", "b"):
        picture(shape(), dark_on_light=True).save(folder / f"{name}.png")
    single = make(tmp_path, "single")
    result = run_cli(
        "predict",
        "--model",
        model,
        "--image",
        folder,
        "--image",
        single,
        "--json",
        "--out",
        tmp_path / "read.csv",
        "--save-inputs",
        tmp_path / "seen",
    )
    assert result.exit_code == 0, result.stderr
    read = json.loads(result.stdout)
    assert [r["file"] for r in read] == [str(folder / "a.png"), str(folder / "b.png"), str(single)]
    for r in read:
        assert len(r["probabilities"]) == 10 and sum(r["probabilities"]) == pytest.approx(1, abs=1e-5)
        assert r["label"] == int(np.argmax(r["probabilities"]))
    rows = (tmp_path / "read.csv").read_text().splitlines()
    assert rows[0] == "file,label," + ",".join(f"p{d}" for d in range(10)) and len(rows) == 4
    seen = np.asarray(Image.open(tmp_path / "seen" / "single.png"))
    assert seen.shape == (28, 28) and np.abs(seen.astype(float) - prepare(single).pixels).max() <= 1
    text = run_cli("predict", "--model", model, "--image", single).stdout
    assert text.startswith(f"{single}: ") and ", then " in text


def test_save_inputs_keeps_pictures_of_one_name_from_two_folders_apart(tmp_path, digits_csv):
    model = trained_model(tmp_path, digits_csv)
    for folder, dark in (("left", True), ("right", False)):
        (tmp_path / folder).mkdir()
        picture(shape(30 if dark else 50), dark_on_light=dark).save(tmp_path / folder / "seven.png")
    result = run_cli(
        "predict",
        "--model",
        model,
        "--image",
        tmp_path / "left",
        "--image",
        tmp_path / "right",
        "--save-inputs",
        tmp_path / "seen",
    )
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "seen").iterdir()) == ["seven-2.png", "seven.png"]
    for name, folder in (("seven.png", "left"), ("seven-2.png", "right")):
        seen = np.asarray(Image.open(tmp_path / "seen" / name)).astype(float)
        assert np.abs(seen - prepare(tmp_path / folder / "seven.png").pixels).max() <= 1


def bad_images(tmp_path):
    """name -> a file each, every kind the issue lists."""
    made = {}
    blank = tmp_path / "blank.png"
    Image.new("L", (50, 50), 255).save(blank)
    made["blank"] = blank
    text = tmp_path / "notes.png"
    text.write_text("this is not a picture\n")
    made["not an image"] = text
    whole = tmp_path / "whole.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (200, 200), dtype=np.uint8)).save(whole)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(whole.read_bytes()[: len(whole.read_bytes()) // 2])
    made["truncated"] = truncated
    bomb = tmp_path / "bomb.png"  # a tiny file whose header declares a 100,000 x 100,000 picture
    raw = zlib.compress(b"\x00" * 1000)
    chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    bomb.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", raw)
        + chunk(b"IEND", b"")
    )
    made["decompression bomb"] = bomb
    header = lambda width, height: (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IEND", b"")
    )
    for name, (width, height) in {"6000x6000 declared": (6000, 6000), "40,000,000 x 1": (40_000_000, 1)}.items():
        made[name] = tmp_path / f"{name.split()[0].replace(',', '')}.png"
        made[name].write_bytes(header(width, height))
    canvas = tmp_path / "canvas.gif"  # 85 bytes: a one-pixel picture on a 6000x6000 logical screen
    canvas.write_bytes(
        b"GIF89a" + struct.pack("<HHBBB", 6000, 6000, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
        b"\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00\x3b"
    )
    made["a GIF with a 6000x6000 canvas"] = canvas
    lab = tmp_path / "lab.tif"
    Image.new("LAB", (40, 40)).save(lab)
    made["a LAB TIFF"] = lab
    dds = tmp_path / "odd.dds"
    dds.write_bytes(
        b"DDS "
        + struct.pack("<7I", 124, 0x1007, 8, 8, 0, 0, 0)
        + b"\x00" * 44
        + struct.pack("<2I", 32, 4)
        + b"ZZZZ"
        + b"\x00" * 60
    )
    made["a DDS of an unknown format"] = dds
    empty = tmp_path / "empty-folder"
    empty.mkdir()
    made["a folder with no images"] = empty
    return made


def test_every_bad_image_is_one_line_exit_2_and_nothing_is_written(tmp_path, digits_csv):
    model = trained_model(tmp_path, digits_csv)
    for name, path in bad_images(tmp_path).items():
        code, stderr, seconds, peak_mib = run_measured(
            "predict",
            "--model",
            model,
            "--image",
            path,
            "--out",
            tmp_path / "out.csv",
            "--save-inputs",
            tmp_path / "in",
        )
        assert code == 2 and stderr.count("\n") == 1 and str(path) in stderr, (name, stderr)
        assert seconds < 10 and peak_mib < 500, (name, seconds, peak_mib)
        assert not (tmp_path / "out.csv").exists() and not (tmp_path / "in").exists(), name


def test_save_inputs_never_replaces_or_writes_through_what_is_there(tmp_path, digits_csv):
    import os

    model = trained_model(tmp_path, digits_csv)
    pictures = tmp_path / "pics"
    pictures.mkdir()
    picture(shape()).save(pictures / "seven.png")
    mine = (pictures / "seven.png").read_bytes()
    elsewhere = tmp_path / "elsewhere.png"
    elsewhere.write_bytes(b"keep me")
    linked = tmp_path / "linked"
    linked.mkdir()
    os.symlink(elsewhere, linked / "seven.png")
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "seven.png").write_bytes(b"an earlier run")
    for folder in (pictures, linked, taken):
        result = run_cli("predict", "--model", model, "--image", pictures / "seven.png", "--save-inputs", folder)
        assert result.exit_code == 2 and "left alone" in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert (pictures / "seven.png").read_bytes() == mine and elsewhere.read_bytes() == b"keep me"
    assert (taken / "seven.png").read_bytes() == b"an earlier run"


def test_unusual_modes_are_read_as_what_they_show(tmp_path, digits_csv):
    reference = prepare(make(tmp_path, "reference")).pixels
    ink = np.asarray(picture(shape()))
    sixteen = tmp_path / "sixteen.png"
    Image.fromarray(ink.astype(np.uint16) * 257).save(sixteen)  # 16-bit grey: 65535 is white
    cmyk = tmp_path / "cmyk.jpg"
    Image.fromarray(ink).convert("CMYK").save(cmyk, quality=95)
    palette = tmp_path / "palette.png"
    Image.fromarray(ink).convert("P").save(palette)
    gif = tmp_path / "animated.gif"
    frames = [Image.fromarray(ink), Image.fromarray(255 - ink)]
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=100)
    for path in (sixteen, cmyk, palette, gif):
        prepared = prepare(path)
        assert np.abs(prepared.pixels - reference).mean() < 6, path.name
    assert prepare(gif).notes == ["the first of its 2 frames"]


@pytest.mark.parametrize(
    "overrides",
    [
        ["model.hidden=[{size: 12, batchnorm: true, dropout: 0.3}, {size: 8, activation: tanh}]"],
        ["model.conv=[{filters: 3, kernel: 5, pool: 2, batchnorm: true}]", "model.hidden=[{size: 8}]"],
    ],
)
def test_the_saliency_is_the_central_difference_gradient_of_the_class_score(overrides):
    from bp_train.config import build_network, load_config
    from bp_train.nn.gradient import numerical_gradient, parameter_error
    from bp_train.training.voting import score_gradient

    network = build_network(load_config(None, overrides), seed=2, dtype="float64")
    rng = np.random.default_rng(0)
    network.gradient(rng.random((6, 784)), rng.integers(0, 10, 6))  # running averages away from 0 and 1
    x = rng.random((1, 784))
    label = int(network.predict(x).argmax())
    saliency = score_gradient(network, x.copy(), label)
    numeric = numerical_gradient(lambda: float(network.predict(x)[0, label]), x, h=1e-6)
    assert saliency.shape == (1, 784) and parameter_error(saliency, numeric) < 1e-6

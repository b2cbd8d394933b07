"""Augmentation: each transform against a known answer, bilinear sampling against its definition, seeded
and resumable draws, training batches only, and bad settings refused when the config is read."""

import numpy as np
import pytest
from conftest import run_cli

from bp_train.config import load_config
from bp_train.data.augment import Augmenter, affine_matrices, bilinear, distort, gaussian_matrix
from bp_train.errors import ConfigError

IDENTITY = affine_matrices(np.zeros(1), np.ones(1), np.zeros(1))
NO_SHIFT = np.zeros((1, 2))


def dot(row=10, col=12):
    image = np.zeros((1, 1, 28, 28))
    image[0, 0, row, col] = 1.0
    return image


def test_a_dot_shifted_by_two_lands_two_pixels_away():
    moved = distort(dot(), IDENTITY, np.array([[2.0, 0.0]]))  # +2 in x: two columns to the right
    assert np.argwhere(moved[0, 0] > 0.99).tolist() == [[10, 14]]
    moved = distort(dot(), IDENTITY, np.array([[0.0, -2.0]]))  # -2 in y: two rows up
    assert np.argwhere(moved[0, 0] > 0.99).tolist() == [[8, 12]]


def test_a_quarter_turn_rotates_an_asymmetric_pattern_counterclockwise():
    pattern = np.zeros((1, 1, 28, 28))
    pattern[0, 0, 3:6, 10:20] = 1.0  # an L: a bar and a stem, no symmetry
    pattern[0, 0, 3:20, 10:12] = 1.0
    turned = distort(pattern, affine_matrices(np.array([90.0]), np.ones(1), np.zeros(1)), NO_SHIFT)
    np.testing.assert_allclose(turned[0, 0], np.rot90(pattern[0, 0]), atol=1e-9)


def test_zero_settings_are_the_identity():
    image = np.random.default_rng(0).random((3, 1, 28, 28))
    np.testing.assert_allclose(distort(image, np.repeat(IDENTITY, 3, 0), np.zeros((3, 2))), image, atol=1e-12)
    settings = load_config(None, ["train.augment={scale: 0, elastic: {alpha: 0, sigma: 4}}"]).train.augment
    rows = image.reshape(3, -1).astype(np.float32)
    np.testing.assert_allclose(Augmenter(settings, [1, 28, 28], np.random.default_rng(0))(rows), rows, atol=1e-6)


def test_scaling_multiplies_distances_from_the_centre():
    # pixel (15, 15) sits 1.5 pixels right of and below the centre (13.5, 13.5); three times as far is (18, 18)
    grown = distort(dot(15, 15), affine_matrices(np.zeros(1), np.array([3.0]), np.zeros(1)), NO_SHIFT)
    assert grown[0, 0, 18, 18] == pytest.approx(1.0)
    assert np.unravel_index(grown[0, 0].argmax(), (28, 28)) == (18, 18)


def test_bilinear_sampling_is_the_weighted_mean_of_four_neighbours_and_zero_outside():
    rng = np.random.default_rng(1)
    image = rng.random((1, 1, 5, 5))
    rows, cols = np.array([[[1.25, -3.0, 4.5]]]), np.array([[[2.5, 1.0, 0.0]]])
    out = bilinear(image, rows, cols)[0, 0, 0]
    a = image[0, 0]
    expected = 0.75 * (0.5 * a[1, 2] + 0.5 * a[1, 3]) + 0.25 * (0.5 * a[2, 2] + 0.5 * a[2, 3])
    assert out[0] == pytest.approx(expected)
    assert out[1] == 0.0  # far outside: zero
    assert out[2] == pytest.approx(0.5 * a[4, 0])  # half a pixel past the last row: half of it, half of 0


def test_the_gaussian_matrix_smooths_like_a_gaussian():
    g = gaussian_matrix(28, 2.0)
    impulse = np.zeros(28)
    impulse[14] = 1.0
    response = g @ impulse
    assert response.argmax() == 14 and response.sum() == pytest.approx(1.0, abs=1e-6)
    assert response[14 + 2] / response[14] == pytest.approx(np.exp(-0.5), rel=1e-9)  # one sigma away


def test_augmented_values_stay_in_unit_range_and_the_same_seed_gives_the_same_batches():
    settings = load_config(
        None, ["train.augment={shift: 3, rotate: 30, scale: 0.2, shear: 0.3, elastic: {alpha: 40, sigma: 3}}"]
    ).train.augment
    rows = np.random.default_rng(2).random((50, 784)).astype(np.float32)
    first = Augmenter(settings, [1, 28, 28], np.random.default_rng(5))(rows)
    again = Augmenter(settings, [1, 28, 28], np.random.default_rng(5))(rows)
    other = Augmenter(settings, [1, 28, 28], np.random.default_rng(6))(rows)
    assert first.min() >= 0.0 and first.max() <= 1.0 and first.dtype == np.float32
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize(
    "augment, message",
    [
        ("{shift: -1}", "'train.augment.shift' is -1"),
        ("{rotate: 200}", "'train.augment.rotate' is 200"),
        ("{rotation: 10}", "unknown key 'train.augment.rotation' (did you mean 'rotate'?)"),
        ("{elastic: {alpha: 30, sigma: 0}}", "'train.augment.elastic.sigma' is 0"),
        ("{scale: 1.5}", "'train.augment.scale' is 1.5"),
    ],
)
def test_bad_augmentation_settings_fail_when_the_config_is_read(augment, message, tmp_path):
    config = tmp_path / "aug.yaml"
    config.write_text(f"train: {{augment: {augment}}}\n")
    with pytest.raises(ConfigError) as error:
        load_config(config)
    assert message in str(error.value)
    result = run_cli("fit", "--config", config)
    assert result.exit_code == 2 and message in result.stderr


AUGMENT = "train.augment={shift: 2, rotate: 10, scale: 0.1, shear: 0.1, elastic: {alpha: 20, sigma: 4}}"


def test_only_training_batches_are_distorted(tiny_config, tmp_path, monkeypatch):
    seen = []
    original = Augmenter.__call__

    def counting(self, x):
        seen.append(len(x))
        return original(self, x)

    monkeypatch.setattr(Augmenter, "__call__", counting)
    result = run_cli("fit", "--config", tiny_config, "--set", AUGMENT, "--out", tmp_path / "run", "--quiet", "--json")
    assert result.exit_code == 0, result.output
    assert sum(seen) == 3 * 480  # three epochs of the 480 training rows; never the 120 validation rows
    seen.clear()
    assert run_cli("evaluate", "--run", tmp_path / "run").exit_code == 0
    assert seen == []


def test_an_augmented_run_resumes_exactly(tiny_config, tmp_path):
    common = ["--config", tiny_config, "--set", AUGMENT, "--quiet", "--threads", "1"]
    assert run_cli("fit", *common, "--epochs", "4", "--out", tmp_path / "whole").exit_code == 0
    assert run_cli("fit", *common, "--epochs", "2", "--out", tmp_path / "part").exit_code == 0
    assert run_cli("fit", "--resume", tmp_path / "part", "--epochs", "4", "--quiet", "--threads", "1").exit_code == 0
    with np.load(tmp_path / "whole" / "model.npz") as a, np.load(tmp_path / "part" / "model.npz") as b:
        for key in ("W1", "b1", "W2", "b2"):
            np.testing.assert_array_equal(a[key], b[key])


def test_show_and_plot_augment_draw_originals_beside_distortions(tiny_config, tmp_path):
    config = tmp_path / "aug.yaml"
    config.write_text(tiny_config.read_text().replace("train: {", "train: {augment: {shift: 2, rotate: 10}, "))
    result = run_cli("show", "--augment", config, "--limit", "2")
    assert result.exit_code == 0, result.output
    assert result.stdout.count("original") == 2 and "distortion 2" in result.stdout
    pytest.importorskip("matplotlib")
    result = run_cli("plot", "--augment", config, "--out", tmp_path / "grid.png")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "grid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result = run_cli("show", "--augment", tiny_config)
    assert result.exit_code == 2 and "no train.augment section" in result.stderr

"""Ensembles and test-time augmentation: soft voting checked against a hand-made average, TTA without a
shift against plain prediction, an ensemble folder's members trained, resumed and refused one by one."""

import numpy as np
import pytest
import yaml
from conftest import run_cli, synthetic_digits, write_digit_csv

from bp_train.data.augment import shifted
from bp_train.files.model import load_model
from bp_train.training.voting import NO_TTA, Ensemble, Member, load_ensemble


@pytest.fixture
def ensemble(tmp_path, tiny_config):
    """A two-member ensemble of the tiny config, trained with seeds 1 and 2."""
    folder = tmp_path / "ens"
    result = run_cli("fit", "--config", tiny_config, "--seeds", "1,2", "--out", folder, "--quiet")
    assert result.exit_code == 0, result.output
    return folder


def probabilities_csv(path):
    return np.loadtxt(path, delimiter=",", skiprows=1)[:, 1:]


def test_fit_seeds_writes_one_run_folder_per_member_and_a_manifest(ensemble):
    manifest = yaml.safe_load((ensemble / "ensemble.yaml").read_text())
    assert manifest["members"] == ["seed-1", "seed-2"]
    for seed in (1, 2):
        _, config, _ = load_model(ensemble / f"seed-{seed}" / "model.npz")
        assert config.train.seed == seed
    first, second = (np.load(ensemble / f"seed-{s}" / "model.npz")["W1"] for s in (1, 2))
    assert not np.array_equal(first, second)  # different seeds, different networks


def test_two_models_averaged_by_hand_equal_the_ensemble(tmp_path, ensemble):
    images, _ = synthetic_digits(50, seed=9)
    data = write_digit_csv(tmp_path / "test.csv", images, None)
    each = []
    for seed in (1, 2):
        out = tmp_path / f"p{seed}.csv"
        assert (
            run_cli(
                "predict",
                "--model",
                ensemble / f"seed-{seed}" / "model.npz",
                "--data",
                data,
                "--out",
                tmp_path / f"s{seed}.csv",
                "--proba",
                out,
            ).exit_code
            == 0
        )
        each.append(probabilities_csv(out))
    for models in (
        ["--model", ensemble],
        ["--model", ensemble / "seed-1", "--model", ensemble / "seed-2" / "model.npz"],
    ):
        assert (
            run_cli(
                "predict", *models, "--data", data, "--out", tmp_path / "e.csv", "--proba", tmp_path / "pe.csv"
            ).exit_code
            == 0
        )
        averaged = probabilities_csv(tmp_path / "pe.csv")
        np.testing.assert_allclose(averaged, (each[0] + each[1]) / 2, atol=2e-6)  # 6 decimals written
        labels = np.loadtxt(tmp_path / "e.csv", delimiter=",", skiprows=1, dtype=int)[:, 1]
        np.testing.assert_array_equal(labels, ((each[0] + each[1]) / 2).argmax(axis=1))


def test_ensembles_trained_on_two_machines_combine_by_repeating_model(tmp_path, tiny_config, ensemble):
    """docs/commands.md: seeds 1,2 on one machine, 3 on another, copied together: --model A --model B
    is the ensemble of all three, the same probabilities as one folder trained with --seeds 1,2,3."""
    import shutil

    other = tmp_path / "elsewhere"
    assert run_cli("fit", "--config", tiny_config, "--seeds", "3", "--out", other / "ens-b", "--quiet").exit_code == 0
    copied = tmp_path / "here" / "ens-b"
    shutil.copytree(other / "ens-b", copied)  # brought over from the other machine
    whole = tmp_path / "whole"
    assert run_cli("fit", "--config", tiny_config, "--seeds", "1,2,3", "--out", whole, "--quiet").exit_code == 0
    images, _ = synthetic_digits(40, seed=4)
    data = write_digit_csv(tmp_path / "test.csv", images, None)
    figures = {}
    for name, models in (("combined", ["--model", ensemble, "--model", copied]), ("whole", ["--model", whole])):
        proba = tmp_path / f"{name}.csv"
        result = run_cli("predict", *models, "--data", data, "--out", tmp_path / f"{name}-labels.csv", "--proba", proba)
        assert result.exit_code == 0, result.output
        figures[name] = probabilities_csv(proba)
    np.testing.assert_allclose(figures["combined"], figures["whole"], atol=2e-6)  # 6 decimals written
    lone = tmp_path / "lone.csv"
    assert (
        run_cli("predict", "--model", copied, "--data", data, "--out", tmp_path / "l.csv", "--proba", lone).exit_code
        == 0
    )
    assert not np.allclose(probabilities_csv(lone), figures["whole"], atol=1e-3)  # three members, not one


def test_evaluate_reports_each_member_and_the_ensemble(tmp_path, ensemble):
    images, labels = synthetic_digits(200, seed=5)
    data = write_digit_csv(tmp_path / "labelled.csv", images, labels)
    result = run_cli("evaluate", "--model", ensemble, "--data", data, "--json")
    assert result.exit_code == 0, result.output
    import json

    figures = json.loads(result.stdout)
    assert [m["model"] for m in figures["members"]] == [str(ensemble / "seed-1"), str(ensemble / "seed-2")]
    singles = [
        json.loads(
            run_cli("evaluate", "--model", ensemble / f"seed-{s}" / "model.npz", "--data", data, "--json").stdout
        )["accuracy"]
        for s in (1, 2)
    ]
    assert [m["accuracy"] for m in figures["members"]] == pytest.approx(singles)
    assert figures["member_accuracy_mean"] == pytest.approx(np.mean(singles))
    text = run_cli("evaluate", "--model", ensemble, "--data", data).stdout
    assert "the ensemble of 2" in text and "+-" in text


def test_an_ensemble_of_one_without_tta_is_the_network_itself(ensemble):
    network, config, meta = load_model(ensemble / "seed-1" / "model.npz")
    x = np.random.default_rng(0).random((40, 784)).astype(np.float32)
    plain = network.probabilities(network.predict(x).astype(np.float64))
    model = Ensemble([Member("one", ensemble / "seed-1" / "model.npz", network, config, meta)])
    np.testing.assert_array_equal(model.probabilities(x), plain)
    # TTA whose views are all the unmoved digit is plain prediction too, to the last bit
    model.views = NO_TTA * 5
    np.testing.assert_allclose(model.probabilities(x), plain, rtol=1e-12, atol=1e-15)


def test_tta_averages_the_shifted_views(ensemble):
    model = load_ensemble([ensemble / "seed-1"], tta=True)
    network = model.network
    x = np.random.default_rng(1).random((20, 784)).astype(np.float32)
    by_hand = np.mean(
        [
            network.probabilities(network.predict(shifted(x, (1, 28, 28), (dx, dy), degrees)).astype(np.float64))
            for dx, dy, degrees in model.views
        ],
        axis=0,
    )
    np.testing.assert_allclose(model.probabilities(x), by_hand, rtol=1e-12)
    assert len(model.views) > 1


def test_a_whole_pixel_shift_moves_the_pixels_and_no_shift_changes_nothing():
    x = np.random.default_rng(2).random((3, 784)).astype(np.float32)
    np.testing.assert_array_equal(shifted(x, (1, 28, 28), (0, 0)), x)
    right = shifted(x, (1, 28, 28), (1, 0)).reshape(3, 28, 28)
    np.testing.assert_array_equal(right[:, :, 1:], x.reshape(3, 28, 28)[:, :, :-1])
    assert not right[:, :, 0].any()
    up = shifted(x, (1, 28, 28), (0, -1)).reshape(3, 28, 28)
    np.testing.assert_array_equal(up[:, :-1], x.reshape(3, 28, 28)[:, 1:])


def one_line_error(result, *phrases):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for phrase in phrases:
        assert phrase in lines[0], lines[0]


def predict_with(tmp_path, *models):
    images, _ = synthetic_digits(10, seed=4)
    data = write_digit_csv(tmp_path / "few.csv", images, None)
    args = [a for m in models for a in ("--model", m)]
    return run_cli("predict", *args, "--data", data, "--out", tmp_path / "sub.csv")


def test_a_missing_member_is_one_line_naming_it(tmp_path, ensemble):
    (ensemble / "seed-2" / "model.npz").unlink()
    one_line_error(predict_with(tmp_path, ensemble), "seed-2", "no model.npz", "--resume")
    assert not (tmp_path / "sub.csv").exists()


def test_a_damaged_member_is_one_line_naming_it(tmp_path, ensemble):
    path = ensemble / "seed-1" / "model.npz"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    one_line_error(predict_with(tmp_path, ensemble), "seed-1")


def test_a_member_of_another_input_size_is_refused(tmp_path, ensemble):
    from bp_train.config import build_network, load_config
    from bp_train.files.model import save_model

    config = load_config(None, ["model.input_size=400", "model.input_shape=[1, 20, 20]", "model.hidden=[{size: 8}]"])
    other = tmp_path / "other.npz"
    save_model(other, build_network(config, seed=0), config.to_dict())
    one_line_error(predict_with(tmp_path, ensemble, other), "400", "784", "same digits")
    images, labels = synthetic_digits(20)
    labelled = write_digit_csv(tmp_path / "labelled.csv", images, labels)
    one_line_error(run_cli("evaluate", "--model", ensemble, "--model", other, "--data", labelled), "same digits")
    one_line_error(run_cli("serve", "--model", other, "--model", ensemble, "--port", "0"), "same digits")


def test_an_mlp_and_a_cnn_make_one_ensemble(tmp_path, ensemble, digits_csv):
    cnn = tmp_path / "cnn"
    assert (
        run_cli(
            "fit",
            "--set",
            f"data.train={digits_csv}",
            "--set",
            "model.conv=[{filters: 4, kernel: 3, pool: 2}]",
            "--set",
            "model.hidden=[{size: 8}]",
            "--epochs",
            "1",
            "--out",
            cnn,
            "--quiet",
        ).exit_code
        == 0
    )
    assert predict_with(tmp_path, ensemble, cnn).exit_code == 0


def test_a_damaged_manifest_or_a_foreign_folder_is_one_line(tmp_path, ensemble):
    (ensemble / "ensemble.yaml").write_text("format: bp-train-ensemble/1\nmembers: [../../etc]\nconfig: {}\n")
    one_line_error(predict_with(tmp_path, ensemble), "seed-N")
    (ensemble / "ensemble.yaml").write_text("[unclosed")
    one_line_error(predict_with(tmp_path, ensemble), "not an ensemble manifest")
    empty = tmp_path / "empty"
    empty.mkdir()
    one_line_error(predict_with(tmp_path, empty), "neither model.npz", "nor ensemble.yaml")


def test_ctrl_c_in_a_member_then_resume_finishes_the_rest_and_touches_no_finished_one(
    tmp_path, tiny_config, monkeypatch
):
    from bp_train.training.trainer import Trainer

    folder = tmp_path / "ens"
    original = Trainer.run_epoch

    def interrupted_in_seed_2s_second_epoch(self, epoch):
        if self.config.train.seed == 2 and epoch == 2:
            raise KeyboardInterrupt
        return original(self, epoch)

    monkeypatch.setattr(Trainer, "run_epoch", interrupted_in_seed_2s_second_epoch)
    # one thread throughout: the same seed gives the same weights only with the same thread count
    result = run_cli("fit", "--config", tiny_config, "--seeds", "1,2,3", "--out", folder, "--quiet", "--threads", "1")
    monkeypatch.setattr(Trainer, "run_epoch", original)
    assert result.exit_code == 130
    assert f"to finish the whole ensemble: bp-train fit --resume {folder}" in result.output
    assert not (folder / "seed-3").exists()
    one_line_error(predict_with(tmp_path, folder), "seed-2", "stopped after epoch 1 of 3", "--resume")
    files = ("model.npz", "checkpoint.npz", "metrics.csv")
    before = {n: (folder / "seed-1" / n).read_bytes() for n in files}
    stamp = (folder / "seed-1" / "model.npz").stat().st_mtime_ns
    result = run_cli("fit", "--resume", folder, "--quiet", "--threads", "1")
    assert result.exit_code == 0, result.output
    for line in ("seed-1): finished already", "seed-2): stopped after epoch 1 of 3, to resume", "seed-3): to train"):
        assert line in result.output
    assert {n: (folder / "seed-1" / n).read_bytes() for n in files} == before  # the finished member: untouched
    assert (folder / "seed-1" / "model.npz").stat().st_mtime_ns == stamp
    # the resumed member equals one trained in one go (a resume is exact)
    whole = tmp_path / "whole"
    assert (
        run_cli("fit", "--config", tiny_config, "--seed", "2", "--out", whole, "--quiet", "--threads", "1").exit_code
        == 0
    )
    np.testing.assert_array_equal(np.load(folder / "seed-2" / "model.npz")["W1"], np.load(whole / "model.npz")["W1"])
    assert predict_with(tmp_path, folder).exit_code == 0


def test_resuming_one_member_by_its_folder_leaves_the_others_alone(tmp_path, ensemble):
    other = {n: (ensemble / "seed-1" / n).read_bytes() for n in ("model.npz", "checkpoint.npz", "metrics.csv")}
    result = run_cli("fit", "--resume", ensemble / "seed-2", "--epochs", "4", "--quiet")
    assert result.exit_code == 0, result.output
    assert len((ensemble / "seed-2" / "metrics.csv").read_text().splitlines()) == 5  # header + 4 epochs
    assert {n: (ensemble / "seed-1" / n).read_bytes() for n in other} == other


def test_resume_with_seeds_adds_the_members_it_lacks_and_leaves_the_others_alone(tmp_path, tiny_config, ensemble):
    before = {s: (ensemble / f"seed-{s}" / "model.npz").read_bytes() for s in (1, 2)}
    result = run_cli("fit", "--resume", ensemble, "--seeds", "2,3", "--quiet", "--threads", "1")
    assert result.exit_code == 0, result.output
    assert "member 2/3 (seed-2): finished already" in result.output
    assert "member 3/3 (seed-3): to train" in result.output
    assert yaml.safe_load((ensemble / "ensemble.yaml").read_text())["members"] == ["seed-1", "seed-2", "seed-3"]
    assert {s: (ensemble / f"seed-{s}" / "model.npz").read_bytes() for s in (1, 2)} == before
    alone = tmp_path / "alone"  # the added member is the one a new ensemble of seed 3 would have
    assert (
        run_cli("fit", "--config", tiny_config, "--seeds", "3", "--out", alone, "--quiet", "--threads", "1").exit_code
        == 0
    )  # one thread each: the same sums in the same order
    np.testing.assert_array_equal(
        np.load(ensemble / "seed-3" / "model.npz")["W1"], np.load(alone / "seed-3" / "model.npz")["W1"]
    )
    again = run_cli("fit", "--resume", ensemble, "--seeds", "1", "--quiet")  # nothing to add, nothing to do
    assert again.exit_code == 0 and "to train" not in again.output


def test_ensemble_options_that_contradict_are_refused(tmp_path, tiny_config, ensemble):
    one_line_error(run_cli("fit", "--config", tiny_config, "--seeds", "1,2", "--seed", "3"), "--seed and --seeds")
    one_line_error(run_cli("fit", "--config", tiny_config, "--seeds", "1,x"), "--seeds", "whole numbers")
    one_line_error(
        run_cli("fit", "--config", tiny_config, "--seeds", "1,2", "--out", ensemble),
        "already holds an ensemble",
        "--overwrite",
    )
    one_line_error(run_cli("fit", "--resume", ensemble, "--seeds", "4", "--out", tmp_path / "x"), "--resume", "--out")
    one_line_error(run_cli("fit", "--resume", ensemble, "--seeds", "4,x"), "--seeds", "whole numbers")
    one_line_error(
        run_cli("fit", "--resume", ensemble, "--set", "model.hidden=[{size: 9}]"), "cannot resume", "model.hidden"
    )
    one_line_error(run_cli("evaluate", "--run", ensemble), "own seeds", "--model")
    run_dir = tmp_path / "run"
    assert run_cli("fit", "--config", tiny_config, "--epochs", "1", "--out", run_dir, "--quiet").exit_code == 0
    one_line_error(run_cli("fit", "--config", tiny_config, "--seeds", "1", "--out", run_dir), "not an ensemble")


def test_overwrite_retrains_the_members_in_place(tmp_path, tiny_config, ensemble):
    old = np.load(ensemble / "seed-1" / "model.npz")["W1"]
    result = run_cli(
        "fit",
        "--config",
        tiny_config,
        "--set",
        "model.hidden=[{size: 16}]",
        "--seeds",
        "1,2",
        "--out",
        ensemble,
        "--overwrite",
        "--quiet",
    )
    assert result.exit_code == 0, result.output
    new = np.load(ensemble / "seed-1" / "model.npz")["W1"]
    assert new.shape != old.shape
    assert yaml.safe_load((ensemble / "ensemble.yaml").read_text())["config"]["model"]["hidden"][0]["size"] == 16


@pytest.mark.parametrize(
    "seeds, message",
    [
        ("0,0", "seed 0 is given twice"),
        ("1_0", "whole numbers"),
        ("\u0661,\u0662", "whole numbers"),
        ("1,,2", "whole numbers"),
        ("-1", "whole numbers"),
        ("4294967296", "between 0 and"),
    ],
)
def test_seeds_are_plain_distinct_whole_numbers_or_one_line(tmp_path, tiny_config, seeds, message):
    """A repeated seed would silently make a smaller ensemble; '1_0' and other scripts' digits are what
    Python's int() takes, not what a person means by a seed."""
    one_line_error(
        run_cli("fit", "--config", tiny_config, "--seeds", seeds, "--out", tmp_path / "e"), "--seeds", message
    )
    assert not (tmp_path / "e").exists()

"""`explain network --model M --image F --label L`: a person's own digit traced forward and backward
through a trained network, the numbers checked against an independent oracle -- every layer's
|dL/d(output)| against central differences of the loss through the layers after it."""

import json

import numpy as np
import pytest
from conftest import run_cli
from PIL import Image, ImageDraw

from bp_train.data.images import prepare
from bp_train.files.model import load_model
from bp_train.nn.gradient import numerical_gradient


@pytest.fixture(scope="module")
def model_and_digit(tmp_path_factory):
    """A float64 model with BatchNorm and dropout (evaluation mode must leave both fixed), and a picture
    of a seven drawn in black on white paper, as a person would photograph one."""
    from conftest import synthetic_digits, write_digit_csv

    folder = tmp_path_factory.mktemp("explain")
    data = write_digit_csv(folder / "digits.csv", *synthetic_digits(300))
    config = folder / "c.yaml"
    config.write_text(
        f"model: {{hidden: [{{size: 24, batchnorm: true, dropout: 0.3}}, {{size: 12, activation: tanh}}], "
        f"dtype: float64}}\ndata: {{train: {data}, val_fraction: 0.0}}\ntrain: {{epochs: 2, batch_size: 50}}\n"
    )
    assert run_cli("fit", "--config", config, "--out", folder / "run", "--quiet").exit_code == 0
    picture = Image.new("L", (240, 240), 235)
    ImageDraw.Draw(picture).line([(60, 50), (180, 50), (110, 200)], fill=20, width=16)
    picture.save(folder / "seven.png")
    return folder / "run" / "model.npz", folder / "seven.png"


def test_the_trace_of_an_own_digit_equals_central_differences_layer_by_layer(model_and_digit):
    model, image = model_and_digit
    result = run_cli("explain", "network", "--model", model, "--image", image, "--label", "3", "--json")
    assert result.exit_code == 0, result.output
    trace = json.loads(result.stdout)
    x = prepare(image).pixels.reshape(1, -1).round().astype(np.uint8) / 255.0
    assert np.allclose(trace["input"], x[0], atol=1e-6) and trace["label"] == 3
    probabilities = np.array(trace["probabilities"])
    assert probabilities.sum() == pytest.approx(1, abs=1e-5)
    assert trace["loss"] == pytest.approx(-np.log(probabilities[3]), rel=1e-4)

    network, _, _ = load_model(model)
    network.set_flag("train", False)
    layers = list(network.layers.values())
    outputs, out = [], x
    for layer in layers:
        out = layer.forward(out)
        outputs.append(out.copy())
    for k, row in enumerate(trace["layers"]):
        if "grad_norm" not in row:
            continue

        def loss_from_layer_k(k=k, at=outputs[k]):
            y = at
            for layer in layers[k + 1 :]:
                y = layer.forward(y)
            return network.last_layer.forward(y, np.array([3]))

        numeric = numerical_gradient(loss_from_layer_k, outputs[k])
        assert row["grad_norm"] == pytest.approx(np.linalg.norm(numeric), rel=1e-6), row["layer"]
    assert sum("grad_norm" in row for row in trace["layers"]) >= len(layers) - 1


def test_without_a_label_the_loss_is_taken_for_the_digit_the_network_reads(model_and_digit):
    model, image = model_and_digit
    result = run_cli("explain", "network", "--model", model, "--image", image, "--json")
    trace = json.loads(result.stdout)
    assert trace["label"] == int(np.argmax(trace["probabilities"]))
    predicted = run_cli("predict", "--model", model, "--image", image, "--json")
    assert json.loads(predicted.stdout)[0]["probabilities"] == pytest.approx(trace["probabilities"], abs=1e-6)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "MODEL", "--image", "IMAGE", "--label", "12"], "--label"),
        (["--model", "MODEL", "--image", "missing.png"], "missing.png"),
        (["--model", ".", "--image", "IMAGE", "--label", "3"], "--model"),  # a folder, not a model
        (["--model", "MODEL", "--label", "3"], "--label goes with --image"),
    ],
)
def test_bad_requests_are_one_error_line_and_exit_2(model_and_digit, tmp_path, args, message):
    model, image = model_and_digit
    args = [{"MODEL": model, "IMAGE": image}.get(word, word) for word in args]
    result = run_cli("explain", "network", *args, cwd=tmp_path)
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in result.output, result.output


def test_row_n_traces_that_row_of_the_training_data(tmp_path, tiny_config, digits_csv):
    from bp_train.data.digits import load_digits, to_float
    from bp_train.files.model import load_model

    fitted = run_cli("fit", "--config", tiny_config, "--out", tmp_path / "run", "--quiet")
    assert fitted.exit_code == 0, fitted.stderr
    network, _, _ = load_model(tmp_path / "run" / "model.npz")
    digits = load_digits(digits_csv)
    for row in (0, 3):
        traced = run_cli("explain", "network", "--model", tmp_path / "run" / "model.npz", "--row", row, "--json")
        assert traced.exit_code == 0, traced.stderr
        trace = json.loads(traced.stdout)
        x = to_float(digits.images[row : row + 1], np.float64)
        data_loss, _ = network.loss_terms(x, digits.labels[row : row + 1].astype(np.intp), train=True)
        assert trace["layers"][-1]["loss"] == pytest.approx(data_loss, rel=1e-5)
        assert f"row {row} of" in trace["network"]
    too_far = run_cli("explain", "network", "--model", tmp_path / "run" / "model.npz", "--row", 600)
    assert too_far.exit_code == 2 and "rows 0 to 599" in too_far.stderr and too_far.stderr.count("\n") == 1

"""The step-through on the page: its endpoints against `Network.gradient` and the loss, every bad request a
4xx, and in a real browser (Debian's chromium driven by Playwright) a drawn digit stepped forward and
backward through every layer of an MLP and of a CNN, what the page shows checked against the API."""

import numpy as np
import pytest
from conftest import REPLICA_TRAIN, run_cli
from test_serve import CHROMIUM, browser, draw, request, start_server, stroke_png
from test_serve import model as mlp_model  # noqa: F401 (a fixture: a trained 784-100-10)

from bp_train.files.model import load_model
from bp_train.serve.steps import decode


@pytest.fixture(scope="module")
def mlp_server(mlp_model):  # noqa: F811
    port, process = start_server(mlp_model)
    yield port, process
    process.kill()
    process.wait()


def oracle_gradients(model_path, x, label):
    """Network.gradient of the loaded model for this one digit, without weight decay (the page's loss is
    the digit's cross-entropy alone); an MLP or CNN with no dropout or BatchNorm, where training mode and
    reading mode are the same function."""
    network, _, _ = load_model(model_path)
    network.weight_decay = 0.0
    return network.gradient(x.reshape(1, -1).astype(network.dtype), np.array([label]))


def check_every_layer_against_the_api(port, session, outline, model_path):
    """Every layer's output and gradient fetched; its parameters' gradients equal Network.gradient's."""
    x = decode(outline["input"]).reshape(1, -1)
    expected = oracle_gradients(model_path, x, outline["label"])
    seen = set()
    for layer in outline["layers"]:
        for direction in ("forward", "backward"):
            status, answer = request(
                port, "GET", f"/api/layer?session={session}&layer={layer['name']}&pass={direction}&params=1"
            )
            assert status == 200 and list(decode(answer["values"]).shape) == layer["shape"]
            for key, grad in answer.get("param_grads", {}).items():
                np.testing.assert_allclose(decode(grad), expected[key], atol=1e-6, err_msg=key)
                seen.add(key)
    assert seen == set(expected)


def test_the_endpoints_give_network_gradients_and_a_learning_step_leaves_the_model_file_alone(mlp_server, mlp_model):  # noqa: F811
    port, _ = mlp_server
    kept = mlp_model.read_bytes()
    status, outline = request(port, "POST", "/api/trace?label=7", stroke_png("one"))
    assert (
        status == 200
        and outline["label"] == 7
        and [layer["name"] for layer in outline["layers"]]
        == [
            "Affine1",
            "Relu1",
            "Affine2",
        ]
    )
    session = outline["session"]
    check_every_layer_against_the_api(port, session, outline, mlp_model)
    status, learned = request(port, "POST", f"/api/learn?session={session}&rate=0.05")
    assert status == 200 and learned["after"]["loss"] < learned["before"]["loss"] == pytest.approx(outline["loss"])
    status, checked = request(port, "POST", f"/api/check?session={session}")
    assert status == 200 and checked["max_relative_error"] < 1e-5
    status, reset = request(port, "POST", f"/api/reset?session={session}")
    assert reset["loss"] == pytest.approx(outline["loss"]) and reset["steps_learned"] == 0
    assert mlp_model.read_bytes() == kept


STEP_BAD_REQUESTS = [
    ("an unknown layer", "GET", "/api/layer?session={s}&layer=Affine9&pass=forward", 404),
    ("a pass that is neither way", "GET", "/api/layer?session={s}&layer=Affine1&pass=sideways", 400),
    ("a label outside 0-9", "POST", "/api/trace?label=12", 400),
    ("a label that is no number", "POST", "/api/trace?label=%E0%A5%A7", 400),
    ("a learning rate of nan", "POST", "/api/learn?session={s}&rate=nan", 400),
    ("a learning rate of inf", "POST", "/api/learn?session={s}&rate=inf", 400),
    ("a negative learning rate", "POST", "/api/learn?session={s}&rate=-0.1", 400),
    ("a learning rate of 0", "POST", "/api/learn?session={s}&rate=0", 400),
    ("a learning rate in words", "POST", "/api/learn?session={s}&rate=fast", 400),
    ("a step without a digit", "POST", "/api/learn?session=nobody&rate=0.1", 404),
    ("a layer without a digit", "GET", "/api/layer?layer=Affine1", 404),
    ("a check without a digit", "POST", "/api/check", 404),
    ("a reset without a digit", "POST", "/api/reset?session=", 404),
    ("a trace without a picture", "POST", "/api/trace", 400),
    ("a trace of no image", "POST", "/api/trace", 400),
    ("a GET of a step", "GET", "/api/learn?session={s}&rate=0.1", 405),
]


@pytest.mark.parametrize("what, method, path, status", STEP_BAD_REQUESTS, ids=[b[0] for b in STEP_BAD_REQUESTS])
def test_each_bad_step_request_gets_its_4xx_and_the_server_goes_on(mlp_server, what, method, path, status):
    port, process = mlp_server
    _, outline = request(port, "POST", "/api/trace", stroke_png("one"))
    body = stroke_png("one") if path.startswith("/api/trace?") else b"GIF89a no" if "no image" in what else None
    got, answer = request(port, method, path.format(s=outline["session"]), body)
    assert got == status and isinstance(answer, dict) and answer["error"], (what, got, answer)
    ok, again = request(port, "GET", f"/api/layer?session={outline['session']}&layer=Affine2&pass=backward")
    assert ok == 200 and process.poll() is None


CNN = """name: page-cnn
model:
  input_size: 784
  input_shape: [1, 28, 28]
  conv:
    - {filters: 32, kernel: 3, pad: 1, pool: 2}
    - {filters: 16, kernel: 3, pad: 1, pool: 2}
  hidden: [{size: 64}]
  dtype: float32
data: {val_fraction: 0.1}
train: {epochs: 1, batch_size: 100, optimizer: {name: adam, lr: 0.002}}
"""


@pytest.fixture(scope="module")
def cnn_model(tmp_path_factory):
    if not REPLICA_TRAIN.is_file():
        pytest.skip("the CNN is trained on ../shared/data/kaggle-replica, which is absent")
    folder = tmp_path_factory.mktemp("page-cnn")
    (folder / "cnn.yaml").write_text(CNN)
    result = run_cli(
        "fit", "--config", folder / "cnn.yaml", "--data", REPLICA_TRAIN, "--train-rows", "4000",
        "--out", folder / "run", "--quiet",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    return folder / "run" / "model.npz"


def step_through_in_a_browser(port, model_path, screenshots=None):
    sync = browser()
    with sync.sync_playwright() as p:
        chrome = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = chrome.new_page(viewport={"width": 1100, "height": 1300})
        page.goto(f"http://127.0.0.1:{port}/")
        draw(page, [(60, 50), (220, 50), (180, 120), (140, 190), (120, 250)])  # a 7
        page.wait_for_function("window.stepper.shown !== null && !pending && !again")
        outline = page.evaluate("window.stepper.outline")
        session, layers = outline["session"], outline["layers"]
        check_every_layer_against_the_api(port, session, outline, model_path)
        count = page.evaluate("window.stepper.steps.length")
        assert count == 2 * len(layers)
        for at in range(count):
            if at:
                page.click("#next")
            page.wait_for_function(
                f"window.stepper.shown && document.querySelector('#where').textContent === 'step {at + 1} of {count}'"
            )
            shown = page.evaluate("window.stepper.shown")
            layer = layers[at] if at < len(layers) else layers[2 * len(layers) - 1 - at]
            assert (shown["layer"], shown["pass"]) == (layer["name"], "forward" if at < len(layers) else "backward")
            assert shown["maps"] == (layer["maps"] or 1)  # one picture per map, or one strip of values
            assert page.locator("#maps canvas").count() == (layer["maps"] or 1)
            _, answer = request(port, "GET", f"/api/layer?session={session}&layer={layer['name']}&pass={shown['pass']}")
            np.testing.assert_array_equal(np.float32(shown["values"]), decode(answer["values"]).ravel())
            assert page.locator("#view-key canvas").count() == 1 and page.locator("#rule").inner_text()
            if screenshots and (layer["name"], shown["pass"]) in screenshots:
                page.screenshot(path=str(screenshots[layer["name"], shown["pass"]]), full_page=True)
        wrong = (outline["read"] + 1) % 10  # a label the network does not read: a loss worth lowering
        page.select_option("#label", str(wrong))
        page.wait_for_function(f"window.stepper.outline.label === {wrong} && window.stepper.shown")
        page.fill("#rate", "0.05")
        page.click("#learn")
        page.wait_for_function("window.stepper.learned !== undefined")
        learned = page.evaluate("window.stepper.learned")
        assert learned["label"] == wrong and learned["after"]["loss"] < learned["before"]["loss"]
        assert "before" in page.locator("#learned").inner_text()
        page.click("#check")
        page.wait_for_function("window.stepper.checked !== undefined")
        assert page.evaluate("window.stepper.checked.max_relative_error") < 1e-4  # rounding; a wrong rule: ~1
        assert "largest relative error" in page.locator("#checked").inner_text()
        chrome.close()
    return layers


@pytest.mark.slow
def test_in_a_browser_an_mlp_is_stepped_through_forward_and_back(mlp_server, mlp_model):  # noqa: F811
    kept = mlp_model.read_bytes()
    layers = step_through_in_a_browser(mlp_server[0], mlp_model)
    assert [layer["maps"] for layer in layers] == [None, None, None]
    assert mlp_model.read_bytes() == kept


@pytest.mark.slow
def test_in_a_browser_a_cnn_is_stepped_through_forward_and_back(cnn_model):
    kept = cnn_model.read_bytes()
    port, process = start_server(cnn_model)
    try:
        layers = step_through_in_a_browser(port, cnn_model)
    finally:
        process.kill()
        process.wait()
    assert {layer["name"]: layer["maps"] for layer in layers if layer["maps"]}["Convolution1"] == 32
    assert cnn_model.read_bytes() == kept


def test_an_ensemble_is_stepped_through_by_its_first_member_named_on_the_page(mlp_model):  # noqa: F811
    port, process = start_server(mlp_model, mlp_model)
    try:
        status, outline = request(port, "POST", "/api/trace", stroke_png("one"))
        assert status == 200 and outline["members"] == 2 and outline["member"] == str(mlp_model)
        _, page = request(port, "GET", "/")
        assert b"the step-through follows one member" in page
    finally:
        process.kill()
        process.wait()

"""`bp-train serve`: the JSON endpoint answers as `predict --image` does, every bad request gets its 4xx
and the next one is answered, concurrent clients all get right answers, Ctrl-C stops it; and in a real
browser (Debian's chromium driven by Playwright) strokes drawn with the mouse are read."""

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from conftest import REPLICA_TRAIN, run_cli
from PIL import Image, ImageDraw

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A model that reads digits: default.yaml's network on the Kaggle-format data when it is here
    (a few seconds), else on a small synthetic file (enough for everything but the browser's strokes)."""
    folder = tmp_path_factory.mktemp("serve")
    data = REPLICA_TRAIN if REPLICA_TRAIN.is_file() else None
    if data is None:
        from conftest import synthetic_digits, write_digit_csv

        data = write_digit_csv(folder / "digits.csv", *synthetic_digits(600))
    result = run_cli("fit", "--data", data, "--epochs", "3", "--out", folder / "run", "--quiet", "--threads", "2")
    assert result.exit_code == 0, result.stderr
    return folder / "run" / "model.npz"


def start_server(*models, host="127.0.0.1"):
    """`bp-train serve --model M ... --port 0`: (the port it announced, the process), once it listens."""
    given = [arg for model in models for arg in ("--model", str(model))]
    process = subprocess.Popen(
        [sys.executable, "-m", "bp_train.cli", "serve", *given, "--host", host, "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
    )
    line = process.stderr.readline()
    shown = f"[{host}]" if ":" in host else host
    assert f"serving on http://{shown}:" in line, line
    return int(line.rsplit(":", 1)[1].split("/")[0]), process


@pytest.fixture(scope="module")
def server(model):
    port, process = start_server(model)
    yield port, process
    if process.poll() is None:
        process.kill()
        process.wait()


def request(port, method, path, body=None, headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request(method, path, body=body, headers=headers or {})
    answer = connection.getresponse()
    payload = answer.read()
    connection.close()
    return answer.status, json.loads(payload) if answer.getheader("Content-Type", "").startswith(
        "application/json"
    ) else payload


def stroke_png(kind="one"):
    """A digit as a person draws it on the page: black strokes on white."""
    image = Image.new("L", (280, 280), 255)
    pen = ImageDraw.Draw(image)
    if kind == "one":
        pen.line([(140, 40), (140, 240)], fill=0, width=18)
    else:
        pen.ellipse([70, 40, 210, 240], outline=0, width=18)
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"stroke-{kind}-{os.getpid()}.png"
    image.save(path)
    return path.read_bytes()


def test_the_endpoint_answers_as_predict_image_does(server, model, tmp_path):
    port, _ = server
    body = stroke_png("one")
    status, answer = request(port, "POST", "/api/predict", body)
    assert status == 200
    assert set(answer) >= {"label", "probabilities", "input", "saliency"}
    assert np.array(answer["input"]).shape == (28, 28) == np.array(answer["saliency"]).shape
    assert sum(answer["probabilities"]) == pytest.approx(1, abs=1e-5)
    assert np.abs(answer["saliency"]).max() == pytest.approx(1)
    (tmp_path / "one.png").write_bytes(body)
    same = json.loads(run_cli("predict", "--model", model, "--image", tmp_path / "one.png", "--json").stdout)[0]
    assert same["label"] == answer["label"] and same["probabilities"] == pytest.approx(
        answer["probabilities"], abs=1e-6
    )


BAD_REQUESTS = [
    ("a wrong method", "PUT", "/api/predict", b"x", {}, 405),
    ("a GET of the endpoint", "GET", "/api/predict", None, {}, 405),
    ("an unknown path", "POST", "/api/nothing", b"x", {}, 404),
    ("an empty body", "POST", "/api/predict", b"", {}, 400),
    ("a body that is no image", "POST", "/api/predict", b"GIF89a not really", {}, 400),
    ("a blank canvas", "POST", "/api/predict", None, {}, 400),
    ("a body over the limit", "POST", "/api/predict", b"x" * 100, {"Content-Length": "5000000"}, 413),
    (
        "a GIF of 85 bytes declaring a 6000x6000 canvas",
        "POST",
        "/api/predict",
        b"GIF89a\x70\x17\x70\x17\x80\x00\x00\x00\x00\x00\xff\xff\xff"
        b"\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00\x3b",
        {},
        400,
    ),
    ("a TIFF, which Pillow opens and bp-train does not read", "POST", "/api/trace", None, {}, 400),
]


@pytest.mark.parametrize("what, method, path, body, headers, status", BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS])
def test_each_bad_request_gets_its_4xx_and_the_next_request_is_answered(
    server, what, method, path, body, headers, status
):
    port, process = server
    if what.startswith("a TIFF"):
        import io

        buffer = io.BytesIO()
        Image.new("LAB", (40, 40)).save(buffer, format="TIFF")
        body = buffer.getvalue()
    if what == "a blank canvas":
        import io

        buffer = io.BytesIO()
        Image.new("L", (280, 280), 255).save(buffer, format="PNG")
        body = buffer.getvalue()
    try:
        got, answer = request(port, method, path, body, headers)
    except (ConnectionError, http.client.HTTPException):  # the server may close a connection it will not read
        got, answer = status, {"error": "closed"}
    assert got == status and isinstance(answer, dict) and answer["error"], (what, got, answer)
    ok, answer = request(port, "POST", "/api/predict", stroke_png("one"))
    assert ok == 200 and process.poll() is None


def test_two_hundred_requests_from_four_clients_are_all_answered_right(server):
    port, _ = server
    bodies = {kind: stroke_png(kind) for kind in ("one", "zero")}
    expected = {kind: request(port, "POST", "/api/predict", body)[1]["label"] for kind, body in bodies.items()}
    kinds = ["one", "zero"] * 100
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda kind: request(port, "POST", "/api/predict", bodies[kind]), kinds))
    assert all(status == 200 for status, _ in answers)
    assert [answer["label"] for _, answer in answers] == [expected[kind] for kind in kinds]


def test_the_page_is_served_whole_and_loads_nothing_from_elsewhere(server):
    port, _ = server
    status, page = request(port, "GET", "/")
    assert status == 200 and b'<canvas id="pad"' in page
    assert b"http://" not in page and b"https://" not in page and b"src=" not in page  # no CDN: offline


def test_ctrl_c_stops_the_server_cleanly(model):
    _, process = start_server(model)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=10) == 130
    rest = process.stderr.read()
    assert "Traceback" not in rest and rest.count("\n") == 1


def test_a_taken_port_is_one_line(server, model):
    port, _ = server
    result = run_cli("serve", "--model", model, "--port", port)
    assert result.exit_code == 2 and "cannot listen" in result.stderr and result.stderr.count("\n") == 1


# --- in a real browser ---------------------------------------------------------------------------------------


def browser():
    playwright = pytest.importorskip(
        "playwright.sync_api",
        reason="the browser tests need Playwright for Python (pip install playwright; it is in bp-train's dev extra)",
    )
    if CHROMIUM is None:
        pytest.skip("the browser tests need Debian's chromium package (apt-get install chromium)")
    if not REPLICA_TRAIN.is_file():
        pytest.skip("the strokes are read by a model trained on ../shared/data/kaggle-replica, which is absent")
    return playwright


def draw(page, points):
    box = page.locator("#pad").bounding_box()
    page.mouse.move(box["x"] + points[0][0], box["y"] + points[0][1])
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(box["x"] + x, box["y"] + y, steps=3)
    page.mouse.up()


def read_page(page):
    page.wait_for_function("document.querySelectorAll('#bars .bar').length === 10")
    # The page sends one request at a time and the latest drawing once the last answer is in: wait until
    # no request is under way and none is waiting, so the answer shown is the whole drawing's (a fixed
    # wait was too short on a busy machine, which then showed a half-drawn stroke's answer).
    page.wait_for_function("!pending && !again")
    page.wait_for_function("document.querySelectorAll('#bars .bar').length === 10")
    label = page.locator("#digit").inner_text()
    total = sum(float(b.get_attribute("data-probability")) for b in page.locator("#bars .bar").all())
    return label, total


@pytest.mark.slow
def test_in_a_browser_a_vertical_stroke_reads_1_a_loop_reads_0_and_an_upload_is_read(server, tmp_path):
    sync = browser()
    port, _ = server
    with sync.sync_playwright() as p:
        chrome = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = chrome.new_page()
        page.goto(f"http://127.0.0.1:{port}/")
        draw(page, [(140, 40), (140, 120), (140, 240)])
        label, total = read_page(page)
        assert label == "1" and total == pytest.approx(1, abs=1e-3)
        page.click("#clear")
        assert page.locator("#digit").inner_text() == "?"
        loop = [(140 + 70 * np.sin(a), 140 - 100 * np.cos(a)) for a in np.linspace(0, 2 * np.pi, 40)]
        draw(page, loop)
        label, total = read_page(page)
        assert label == "0" and total == pytest.approx(1, abs=1e-3)
        (tmp_path / "one.png").write_bytes(stroke_png("one"))
        page.click("#clear")
        page.set_input_files("#file", str(tmp_path / "one.png"))
        label, total = read_page(page)
        assert label == "1" and total == pytest.approx(1, abs=1e-3)
        page.screenshot(path=str(tmp_path / "page.png"))
        chrome.close()


RAW_REQUESTS = [
    ("a length with an underscore", [("Content-Length", "1_0")], 411),
    ("a length with a sign", [("Content-Length", "+10")], 411),
    ("two lengths that disagree", [("Content-Length", "10"), ("Content-Length", "4")], 411),
    ("a length and a chunked body", [("Content-Length", "10"), ("Transfer-Encoding", "chunked")], 400),
    ("no length", [], 411),
]


@pytest.mark.parametrize("what, headers, status", RAW_REQUESTS, ids=[r[0] for r in RAW_REQUESTS])
def test_a_body_length_that_could_be_read_two_ways_is_refused_and_the_server_goes_on(server, what, headers, status):
    """Headers http.client would never send, written on the socket: a proxy in front and this server must
    not disagree on where the body ends, so only one plain Content-Length is taken."""
    import socket

    port, process = server
    lines = ["POST /api/predict HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers)]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + b"0123456789")
        received = b""
        while chunk := connection.recv(65536):  # the server closes a connection whose body it will not read
            received += chunk
        answer = received.decode("latin-1")
    assert answer.startswith(f"HTTP/1.0 {status}") or answer.startswith(f"HTTP/1.1 {status}"), (what, answer[:80])
    assert '"error"' in answer
    ok, _ = request(port, "POST", "/api/predict", stroke_png("one"))
    assert ok == 200 and process.poll() is None


def test_head_of_the_page_gives_gets_headers_and_no_body(server):
    port, _ = server
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("HEAD", "/")
    head = connection.getresponse()
    assert head.status == 200 and head.read() == b""
    length = int(head.getheader("Content-Length"))
    connection.close()
    status, page = request(port, "GET", "/")
    assert status == 200 and len(page) == length


def test_an_empty_host_is_refused_rather_than_every_interface(tmp_path, model):
    result = run_cli("serve", "--model", model, "--host", "")
    assert result.exit_code == 2 and "--host ''" in result.output and "0.0.0.0" in result.output

"""The page's step-through, measured and photographed: `python docs/step_through_page.py --model M`.

Starts `bp-train serve --model M`, and
  * times 100 requests of each step-through endpoint (a trace of a drawn 7; every layer's forward and
    backward fetched in turn; a learning step; a reset) while a second client keeps asking /api/predict,
    as another visitor would, and prints the median and 95th percentile of each;
  * with --screenshots DIR, draws the same 7 in chromium (Playwright) and saves the forward and the
    backward view of the first convolution (or the first layer), the loss taken for the label 1, as
    step-forward.png and step-backward.png.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SEVEN = [(60, 50), (220, 50), (180, 120), (140, 190), (120, 250)]


def seven_png() -> bytes:
    image = Image.new("L", (280, 280), 255)
    ImageDraw.Draw(image).line(SEVEN, fill=0, width=18, joint="curve")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def request(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, dict, float]:
    start = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request(method, path, body=body)
    answer = connection.getresponse()
    payload = json.loads(answer.read())
    connection.close()
    return answer.status, payload, time.perf_counter() - start


def measure(port: int, rounds: int = 100) -> dict[str, list[float]]:
    picture = seven_png()
    _, outline, _ = request(port, "POST", "/api/trace", picture)
    session, names = outline["session"], [layer["name"] for layer in outline["layers"]]
    steps = [(name, "forward") for name in names] + [(name, "backward") for name in reversed(names)]
    times: dict[str, list[float]] = {"trace": [], "layer": [], "learn": [], "reset": []}
    busy = threading.Event()

    def other_visitor():
        while not busy.is_set():
            request(port, "POST", "/api/predict", picture)

    visitor = threading.Thread(target=other_visitor, daemon=True)
    visitor.start()
    for i in range(rounds):
        for kind, method, path, body in (
            ("trace", "POST", f"/api/trace?session={session}", picture),
            ("layer", "GET", "/api/layer?session={s}&layer={}&pass={}".format(*steps[i % len(steps)], s=session), None),
            ("learn", "POST", f"/api/learn?session={session}&rate=0.01", None),
            ("reset", "POST", f"/api/reset?session={session}", None),
        ):
            status, _, seconds = request(port, method, path, body)
            assert status == 200, (kind, status)
            times[kind].append(seconds)
    busy.set()
    visitor.join()
    return times


def screenshots(port: int, folder: Path) -> None:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1060, "height": 900})
        page.goto(f"http://127.0.0.1:{port}/")
        box = page.locator("#pad").bounding_box()
        page.mouse.move(box["x"] + SEVEN[0][0], box["y"] + SEVEN[0][1])
        page.mouse.down()
        for x, y in SEVEN[1:]:
            page.mouse.move(box["x"] + x, box["y"] + y, steps=4)
        page.mouse.up()
        page.wait_for_function("window.stepper.shown !== null && !pending && !again")
        page.select_option("#label", "1")  # the loss for reading this 7 as a 1: a gradient worth seeing
        page.wait_for_function("window.stepper.outline.label === 1 && window.stepper.shown !== null")
        layers = page.evaluate("window.stepper.outline.layers")
        first = next((layer["name"] for layer in layers if layer["name"].startswith("Convolution")), layers[0]["name"])
        for direction, name in (("forward", "step-forward.png"), ("backward", "step-backward.png")):
            page.click(f"#chips div:has-text('{direction}') button:text-is('{first}')")
            page.wait_for_function(
                f"window.stepper.shown.layer === '{first}' && window.stepper.shown.pass === '{direction}'"
            )
            page.locator("#steps").screenshot(path=str(folder / name))
            print(f"wrote {folder / name}")
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a model.npz (a fast-cnn one for the figures in the docs)")
    parser.add_argument("--screenshots", type=Path, help="folder for step-forward.png and step-backward.png")
    parser.add_argument("--rounds", type=int, default=100)
    args = parser.parse_args()
    server = subprocess.Popen(
        [sys.executable, "-m", "bp_train.cli", "serve", "--model", args.model, "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port = int(server.stderr.readline().split(":")[2].split("/")[0])
        times = measure(port, args.rounds)
        for kind, seconds in times.items():
            ms = 1000 * np.array(seconds)
            print(
                f"{kind:<6} {len(ms)} requests: median {np.median(ms):.0f} ms, 95th percentile {np.percentile(ms, 95):.0f} ms"
            )
        if args.screenshots:
            screenshots(port, args.screenshots)
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()

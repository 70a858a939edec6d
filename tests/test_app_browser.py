"""The poking page in Debian's headless Chromium: pick a frame, drag arrows, sample, see the videos loop.

The server runs in a thread with uvicorn on a free local port, around the test-double pipeline. The page
with its sampled videos is kept as ``test-artifacts/app.png``, the page after continuing from a last frame
as ``test-artifacts/app-continued.png``.
"""

from __future__ import annotations

import io
import socket
import threading
import time
from pathlib import Path

import pytest
import uvicorn
from app_double import ShiftPipeline, gradient_image
from PIL import Image

from ipoke.app.server import create_app

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]

# The reason is what `make test` prints in its summary (pytest -ra) when the browser tests are skipped.
NEEDS_CHROMIUM = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"browser test: no Chromium at {CHROMIUM}; to run it, install it: apt-get install chromium",
)
pytestmark = [NEEDS_CHROMIUM, pytest.mark.timeout(180)]


def png_bytes(image) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served():
    """(base url, pipeline) of a live server; stopped after the test."""
    pipeline = ShiftPipeline(size=32, n_frames=6)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(pipeline), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the test server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", pipeline
    server.should_exit = True
    thread.join(timeout=10)


def drag(page, box, start, end):
    """Drag between two points given as fractions of the canvas box."""
    page.mouse.move(box["x"] + start[0] * box["width"], box["y"] + start[1] * box["height"])
    page.mouse.down()
    page.mouse.move(box["x"] + end[0] * box["width"], box["y"] + end[1] * box["height"], steps=8)
    page.mouse.up()


def test_poke_sample_and_see_the_videos_loop(served):
    from playwright.sync_api import expect, sync_playwright

    base, pipeline = served
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1360, "height": 900})
            page.on("pageerror", lambda err: errors.append(str(err)))
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            page.goto(base)

            expect(page.locator(".thumb")).to_have_count(3)
            expect(page.locator(".thumb.selected")).to_have_count(1)  # the first test frame is loaded
            expect(page.locator("#canvas-empty")).to_be_hidden()
            expect(page.locator("#sample")).to_be_enabled()  # an image is enough: sampling without a poke

            box = page.locator("#canvas").bounding_box()
            drag(page, box, (0.25, 0.5), (0.6, 0.35))
            drag(page, box, (0.7, 0.7), (0.8, 0.9))
            expect(page.locator("#pokes li")).to_have_count(2)
            page.get_by_role("button", name="Remove poke 2").click()  # arrows are removable
            expect(page.locator("#pokes li")).to_have_count(1)

            page.fill("#n-samples", "3")
            page.fill("#seed", "5")
            page.click("#sample")
            videos = page.locator(".video-card img")
            expect(videos).to_have_count(3)
            gifs = "[...document.querySelectorAll('.video-card img')]"
            page.wait_for_function(f"{gifs}.every(i => i.complete && i.naturalWidth > 0)")
            assert videos.evaluate_all("imgs => imgs.map(i => i.naturalWidth)") == [256] * 3
            expect(page.locator("#results-meta")).to_contain_text("3 samples · seed 5 · 1 poke")

            # The server got one poke in the 48x48 frame's pixels, where it was dragged.
            call = pipeline.calls[-1]
            assert (call["n"], call["seed"], call["shape"]) == (3, 5, (48, 48, 3))
            ((x, y, dx, dy),) = call["pokes"]
            assert abs(x - 12) < 1 and abs(y - 24) < 1 and abs(dx - 16.8) < 1 and abs(dy + 7.2) < 1

            mp4_link = page.locator(".video-card .links a", has_text="MP4").first
            mp4 = page.request.get(base + mp4_link.get_attribute("href"))
            assert mp4.ok and mp4.headers["content-type"] == "video/mp4"

            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "app.png"), full_page=True)

            # Chain a poke from the last frame of sample 2, as in the authors' GUI.
            page.locator(".video-card").nth(1).get_by_role("button", name="Continue from last frame").click()
            expect(page.locator("#chain .crumb")).to_have_count(2)
            expect(page.locator("#chain .crumb.current")).to_have_text("sample 2")
            expect(page.locator("#pokes li")).to_have_count(0)
            drag(page, box, (0.5, 0.5), (0.3, 0.5))
            page.click("#sample")
            page.wait_for_function("document.querySelector('#results-meta').textContent.includes('seed 5')")
            expect(page.locator("#status")).to_have_text("")
            assert pipeline.calls[-1]["shape"] == (32, 32, 3)
            page.screenshot(path=str(ARTIFACTS / "app-continued.png"), full_page=True)

            # An uploaded photo replaces the image; a file the server refuses shows its reason.
            photo = {
                "name": "photo.png",
                "mimeType": "image/png",
                "buffer": png_bytes(gradient_image(60, 90, 150)),
            }
            page.set_input_files("#upload", files=[photo])
            expect(page.locator("#chain .crumb.current")).to_have_text("photo.png")
            assert not errors, errors  # the refusal below is logged by the browser as a failed request
            page.set_input_files(
                "#upload", files=[{"name": "notes.png", "mimeType": "image/png", "buffer": b"no"}]
            )
            expect(page.locator("#status")).to_contain_text(
                "Upload refused: the upload is not a readable image"
            )
        finally:
            browser.close()
    assert [e for e in errors if "status of 415" not in e] == []

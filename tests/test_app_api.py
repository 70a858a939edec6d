"""The poking app's JSON API against a test-double pipeline: happy paths, bad inputs, bounded queue."""

from __future__ import annotations

import asyncio
import io
import sys
import threading
import types

import httpx
import imageio.v3 as iio
import numpy as np
import pytest
from app_double import ShiftPipeline, gradient_image, model_view
from fastapi.testclient import TestClient
from PIL import Image

from ipoke.app import encode
from ipoke.app.jobs import JobQueue, QueueFull
from ipoke.app.server import create_app
from ipoke.errors import IpokeError

SIZE, FRAMES = 32, 5


def png_bytes(image: np.ndarray, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture
def pipeline() -> ShiftPipeline:
    return ShiftPipeline(size=SIZE, n_frames=FRAMES)


@pytest.fixture
def client(pipeline) -> TestClient:
    with TestClient(create_app(pipeline, max_samples=4)) as c:
        yield c


def upload(client: TestClient, image: np.ndarray, fmt: str = "PNG", content_type: str = "image/png"):
    return client.post("/api/images", content=png_bytes(image, fmt), headers={"Content-Type": content_type})


def sample(client: TestClient, image_id: str, pokes=((10, 12, 6, -3),), **extra):
    body = {"image_id": image_id, "pokes": [dict(zip("x y dx dy".split(), p, strict=True)) for p in pokes]}
    return client.post("/api/samples", json=body | extra)


def decode_gif(data: bytes) -> np.ndarray:
    return iio.imread(data, extension=".gif", mode="RGB")


# --- model info, test frames, page -------------------------------------------------------------------------


def test_info_reports_model_and_limits(client):
    info = client.get("/api/info").json()
    assert (info["size"], info["n_frames"], info["max_pokes"], info["max_samples"]) == (SIZE, FRAMES, 5, 4)
    assert info["display_size"] == 256  # 32 px upscaled 8x
    assert len(info["poke_colors"]) == 5 and all(c.startswith("#") for c in info["poke_colors"])
    assert info["queue"]["workers"] == 1


def test_test_frames_are_listed_and_served_square(client, pipeline):
    frames = client.get("/api/frames").json()
    assert [f["name"] for f in frames] == ["frame-0", "frame-1", "frame-2"]
    png = client.get(frames[1]["url"])
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    served = iio.imread(png.content)
    expected = pipeline.test_frames()[1][1][:, 8:56]  # 48x64 centre-cropped to 48x48
    np.testing.assert_array_equal(served, expected)
    assert (frames[1]["width"], frames[1]["height"]) == (48, 48)


def test_page_and_its_assets_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and "<canvas" in page.text and "/static/app.js" in page.text
    assert client.get("/static/app.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/static/style.css").headers["content-type"].startswith("text/css")
    assert client.get("/docs").status_code == 200
    assert "/api/samples" in client.get("/openapi.json").json()["paths"]


@pytest.mark.parametrize(
    "path",
    [
        "/static/server.py",
        "/static/..%2fserver.py",
        "/static/%2e%2e/%2e%2e/errors.py",
        "/static/../../../etc/passwd",
        "/api/videos/..%2f..%2fetc%2fpasswd.gif",
        "/api/videos/0123456789abcdef.gif",
        "/api/videos/0123456789ABCDEF.mp4",
        "/api/images/%2e%2e%2fsecret.png",
        "/api/images/../../etc/passwd.png",
    ],
)
def test_nothing_outside_the_stores_and_static_list_is_served(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert b"root:" not in response.content


# --- uploads -----------------------------------------------------------------------------------------------


def test_upload_is_centre_cropped_to_the_square_the_model_sees(client):
    image = gradient_image(40, 60, hue=30)
    response = upload(client, image)
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["width"], body["height"]) == (40, 40)
    assert body["crop"] == "image 60x40: using its centre 40x40 square (x 10..49)"  # the page shows it
    np.testing.assert_array_equal(iio.imread(client.get(body["url"]).content), image[:, 10:50])
    assert upload(client, gradient_image(40, 40, hue=30)).json()["crop"] == ""


def test_large_upload_is_shrunk_to_the_stored_side(pipeline):
    with TestClient(create_app(pipeline, stored_side=64)) as c:
        body = upload(c, gradient_image(100, 120, hue=30)).json()
    assert (body["width"], body["height"]) == (64, 64)


def test_jpeg_and_webp_uploads_are_accepted(client):
    image = gradient_image(40, 40, hue=90)
    assert upload(client, image, "JPEG", "image/jpeg").status_code == 201
    assert upload(client, image, "WEBP", "image/webp").status_code == 201


def test_transparent_png_is_composited_on_white(client):
    rgba = np.zeros((20, 20, 4), np.uint8)  # fully transparent
    response = client.post("/api/images", content=png_bytes(rgba), headers={"Content-Type": "image/png"})
    assert response.status_code == 201
    assert (iio.imread(client.get(response.json()["url"]).content) == 255).all()


@pytest.mark.parametrize(
    ("content", "content_type", "status", "message"),
    [
        (b"hello", "text/plain", 415, "Content-Type text/plain is not accepted"),
        (b"hello", "", 415, "Content-Type (none)"),
        (b"not an image at all", "image/png", 415, "not a readable image"),
        (png_bytes(gradient_image(40, 40, 0), "TIFF"), "image/png", 415, "unsupported image type TIFF"),
        (png_bytes(gradient_image(40, 40, 0))[:60], "image/png", 415, "truncated or corrupt"),
        (b"", "image/png", 422, "empty"),
        (png_bytes(gradient_image(8, 40, 0)), "image/png", 422, "at least 16 px"),
    ],
)
def test_bad_uploads_get_clear_errors(client, content, content_type, status, message):
    response = client.post("/api/images", content=content, headers={"Content-Type": content_type})
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]


def test_uploads_over_the_byte_and_pixel_limits_are_refused(pipeline):
    with TestClient(create_app(pipeline, max_upload_bytes=2000, max_image_side=100)) as c:
        noisy = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)
        too_big = upload(c, noisy)
        assert too_big.status_code == 413 and "the limit is 2000 bytes" in too_big.json()["detail"]
        data = png_bytes(noisy)  # streamed without Content-Length: counted while reading
        chunks = (data[i : i + 1000] for i in range(0, len(data), 1000))
        streamed = c.post("/api/images", content=chunks, headers={"Content-Type": "image/png"})
        assert (
            streamed.status_code == 413 and "larger than the limit of 2000 bytes" in streamed.json()["detail"]
        )
        too_wide = upload(c, np.zeros((20, 101, 3), np.uint8))
        assert too_wide.status_code == 413 and "101x20 px; the limit is 100 px" in too_wide.json()["detail"]


# --- sampling ----------------------------------------------------------------------------------------------


def test_sampling_returns_looping_gifs_with_the_pokes_drawn(client, pipeline):
    frame = client.get("/api/frames").json()[0]
    response = sample(client, frame["id"], n_samples=3, seed=7)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["n_samples"], body["n_frames"], body["seed"]) == (3, FRAMES, 7)
    assert len({v["id"] for v in body["videos"]}) == 3
    # The pipeline got the square image and the pokes in its coordinates, unchanged.
    assert pipeline.calls[-1] == {"shape": (48, 48, 3), "pokes": [(10, 12, 6, -3)], "n": 3, "seed": 7}

    gif = client.get(body["videos"][0]["gif_url"])
    assert gif.status_code == 200 and gif.headers["content-type"] == "image/gif"
    frames = decode_gif(gif.content)
    assert frames.shape == (FRAMES, 256, 256, 3)
    assert Image.open(io.BytesIO(gif.content)).info["loop"] == 0
    # Far from the poke the GIF shows the upscaled model frame; at the target there is the first poke's dot.
    clean = encode.upscale(model_view(pipeline.test_frames()[0][1], SIZE), 8)
    assert np.abs(frames[0, 200:, :100].astype(int) - clean[200:, :100]).max() <= 24
    tx, ty = (10 + 6) * 256 / 48, (12 - 3) * 256 / 48
    np.testing.assert_allclose(frames[0, round(ty), round(tx)], [255, 64, 64], atol=24)


def test_same_seed_same_videos_other_seed_other_videos(client):
    image_id = client.get("/api/frames").json()[0]["id"]

    def gifs(seed):
        body = sample(client, image_id, pokes=[(24, 24, 20, 10)], n_samples=2, seed=seed).json()
        return [client.get(v["gif_url"]).content for v in body["videos"]]

    assert gifs(3) == gifs(3)
    assert gifs(3) != gifs(4)


def test_mp4_download_is_h264_with_even_size_and_every_frame(client):
    image_id = client.get("/api/frames").json()[2]["id"]
    video = sample(client, image_id).json()["videos"][0]
    mp4 = client.get(video["mp4_url"])
    assert mp4.status_code == 200 and mp4.headers["content-type"] == "video/mp4"
    assert f'filename="ipoke-{video["id"]}.mp4"' in mp4.headers["content-disposition"]
    frames = iio.imread(mp4.content, extension=".mp4")
    assert frames.shape == (FRAMES, 256, 256, 3)
    assert client.get(video["mp4_url"]).content == mp4.content  # encoded once, then cached


def test_continue_registers_the_last_frame_as_a_new_image(client, pipeline):
    image_id = client.get("/api/frames").json()[1]["id"]
    videos = sample(client, image_id, n_samples=2, seed=1).json()["videos"]
    response = client.post(f"/api/videos/{videos[1]['id']}/continue")
    assert response.status_code == 201
    body = response.json()
    assert (body["width"], body["height"], body["name"]) == (SIZE, SIZE, "continued")
    expected = pipeline.sample(pipeline.test_frames()[1][1][:, 8:56], [(10, 12, 6, -3)], 2, 1)[1, -1]
    np.testing.assert_array_equal(iio.imread(client.get(body["url"]).content), expected)
    # The chain goes on: poke the continued frame in its own (model-size) coordinates.
    chained = sample(client, body["id"], pokes=[(5.5, 6.25, 3, 2)], n_samples=1)
    assert chained.status_code == 200, chained.text
    assert pipeline.calls[-1]["shape"] == (SIZE, SIZE, 3)


@pytest.mark.parametrize(
    ("pokes", "extra", "status", "message"),
    [
        ([(10, 12, 6, -3)] * 6, {}, 422, "6 pokes given; the model takes at most 5"),
        ([(48, 10, -5, 0)], {}, 422, "poke 1: start (48, 10) lies outside the 48x48 image"),
        ([(10, 10, 2, 2), (40, 10, 10, 0)], {}, 422, "poke 2: target (50, 10) lies outside the 48x48 image"),
        ([(-1, 10, 5, 0)], {}, 422, "poke 1: start (-1, 10)"),
        ([(10, 12, 6, -3)], {"n_samples": 5}, 422, "n_samples is 5; the limit is 4"),
        ([(10, 12, 6, -3)], {"n_samples": 0}, 422, "n_samples: Input should be greater than or equal to 1"),
        ([(10, 12, 6, -3)], {"seed": -1}, 422, "seed: Input should be greater than or equal to 0"),
        ([(10, 12, 6, -3)], {"temperature": 0}, 422, "temperature: Input should be greater than 0"),
        ([(10, 12, 6, -3)], {"steps": 3}, 422, "steps: Extra inputs are not permitted"),
    ],
)
def test_bad_sample_requests_get_clear_errors(client, pipeline, pokes, extra, status, message):
    image_id = client.get("/api/frames").json()[0]["id"]
    response = sample(client, image_id, pokes=pokes, **extra)
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]
    assert not pipeline.calls


def test_sampling_without_a_poke_is_allowed_as_in_the_api(client, pipeline):
    image_id = client.get("/api/frames").json()[0]["id"]
    for body in ({"image_id": image_id, "n_samples": 1}, {"image_id": image_id, "pokes": [], "n_samples": 1}):
        response = client.post("/api/samples", json=body)
        assert response.status_code == 200, response.text
        assert pipeline.calls[-1]["pokes"] == []


def test_malformed_json_and_unknown_images(client):
    bad = client.post("/api/samples", content=b"{not json", headers={"Content-Type": "application/json"})
    assert bad.status_code == 422 and "JSON decode error" in bad.json()["detail"]
    missing = client.post("/api/samples", json={"image_id": "0123456789abcdef", "pokes": [{"x": 1, "y": 1}]})
    assert missing.status_code == 422 and "pokes.0.dx: Field required" in missing.json()["detail"]
    unknown = sample(client, "0123456789abcdef")
    assert unknown.status_code == 404 and "no image with id 0123456789abcdef" in unknown.json()["detail"]
    traversal = sample(client, "../../etc/passwd")
    assert traversal.status_code == 404 and "malformed image id" in traversal.json()["detail"]
    assert client.post("/api/videos/0123456789abcdef/continue").status_code == 404


def test_pipeline_errors_a_user_can_act_on_are_422(client, pipeline, monkeypatch):
    def refuse(*_args, **_kwargs):
        raise IpokeError("the poke lands on the background")

    monkeypatch.setattr(pipeline, "sample", refuse)
    image_id = client.get("/api/frames").json()[0]["id"]
    response = sample(client, image_id)
    assert response.status_code == 422 and response.json()["detail"] == "the poke lands on the background"


def test_wrong_pipeline_output_is_a_server_error_not_a_video(pipeline, monkeypatch):
    monkeypatch.setattr(pipeline, "sample", lambda *a, **k: np.zeros((1, FRAMES, SIZE, SIZE, 3), np.float32))
    with TestClient(create_app(pipeline), raise_server_exceptions=False) as c:
        image_id = c.get("/api/frames").json()[0]["id"]
        assert sample(c, image_id).status_code == 500


def test_evicted_videos_are_gone(pipeline):
    with TestClient(create_app(pipeline, max_videos=2)) as c:
        image_id = c.get("/api/frames").json()[0]["id"]
        first = sample(c, image_id, n_samples=1).json()["videos"][0]
        sample(c, image_id, n_samples=2)
        assert c.get(first["gif_url"]).status_code == 404


# --- bounded concurrency -----------------------------------------------------------------------------------


def test_full_queue_answers_503_with_retry_after_and_runs_one_model_call_at_a_time(pipeline):
    app = create_app(pipeline, max_concurrency=1, max_queue=1)
    image_id = TestClient(app).get("/api/frames").json()[0]["id"]
    body = {"image_id": image_id, "pokes": [{"x": 10, "y": 10, "dx": 4, "dy": 0}], "n_samples": 1}
    pipeline.gate = gate = threading.Event()

    async def scenario():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            first = asyncio.create_task(http.post("/api/samples", json=body))
            second = asyncio.create_task(http.post("/api/samples", json=body))
            while app.state.queue.stats()["waiting"] < 1:  # one running, one waiting: the queue is full
                await asyncio.sleep(0.01)
            refused = await http.post("/api/samples", json=body)
            gate.set()
            return refused, await first, await second

    refused, first, second = asyncio.run(scenario())
    assert refused.status_code == 503
    assert int(refused.headers["Retry-After"]) >= 1
    assert "queue is full" in refused.json()["detail"]
    assert first.status_code == second.status_code == 200
    assert pipeline.max_overlap == 1 and len(pipeline.calls) == 2
    assert app.state.queue.stats()["running"] == 0


def test_job_queue_frees_a_slot_when_a_job_fails_and_refuses_beyond_capacity():
    queue = JobQueue(workers=1, max_waiting=0)
    release = threading.Event()

    def boom():
        raise ValueError("model exploded")

    async def scenario():
        with pytest.raises(ValueError, match="model exploded"):
            await queue.run(boom)
        held = asyncio.ensure_future(queue.run(release.wait, 30))
        while queue.stats()["running"] < 1:
            await asyncio.sleep(0.01)
        with pytest.raises(QueueFull) as refused:
            await queue.run(int)
        release.set()
        assert await held is True
        return refused.value

    refused = asyncio.run(scenario())
    assert refused.retry_after_s >= 1
    stats = queue.stats()
    assert (stats["running"], stats["waiting"], stats["jobs_done"]) == (0, 0, 2)
    queue.shutdown()
    with pytest.raises(ValueError, match="workers >= 1"):
        JobQueue(workers=0)


# --- the command line --------------------------------------------------------------------------------------


def test_serve_loads_the_pipeline_once_and_hands_it_to_the_server(tmp_path, monkeypatch):
    loads = []

    class FakePokePipeline:
        @classmethod
        def load(cls, directory, device="auto"):
            loads.append((directory, device))
            return ShiftPipeline()

    served = {}
    monkeypatch.setitem(sys.modules, "ipoke.sampling", types.SimpleNamespace(PokePipeline=FakePokePipeline))
    monkeypatch.setattr(
        "uvicorn.run", lambda app, host, port, **kw: served.update(app=app, host=host, port=port, **kw)
    )
    from ipoke.cli import main

    assert main(["serve", "--model", str(tmp_path), "--port", "8123", "--max-samples", "3"]) == 0
    assert loads == [(tmp_path, "auto")]
    assert (served["host"], served["port"], served["limit_concurrency"]) == ("127.0.0.1", 8123, 128)
    with TestClient(served["app"]) as c:
        assert c.get("/api/info").json()["max_samples"] == 3


def test_serve_names_the_missing_model_directory(tmp_path, capsys):
    from ipoke.cli import main

    assert main(["serve", "--model", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "model directory" in err and "nope not found" in err and "make repro" in err


def test_bad_settings_are_refused():
    with pytest.raises(IpokeError, match="max_concurrency must be at least 1"):
        create_app(ShiftPipeline(), max_concurrency=0)


# --- encoding ----------------------------------------------------------------------------------------------


def test_gif_round_trips_exactly_and_loops():
    rng = np.random.default_rng(0)
    palette = rng.integers(0, 256, (16, 3), dtype=np.uint8)
    video = palette[rng.integers(0, 16, (4, 10, 12))]  # few colours: GIF keeps them exactly
    data = encode.encode_gif(video, fps=5)
    np.testing.assert_array_equal(decode_gif(data), video)
    gif = Image.open(io.BytesIO(data))
    assert gif.info["loop"] == 0 and gif.info["duration"] == 200


def test_mp4_pads_odd_sizes_to_even():
    video = np.full((3, 15, 21, 3), 90, np.uint8)
    assert encode.pad_to_even(video).shape == (3, 16, 22, 3)
    frames = iio.imread(encode.encode_mp4(video, fps=5), extension=".mp4")
    assert frames.shape == (3, 16, 22, 3)
    assert np.abs(frames.astype(int) - 90).max() <= 3


def test_upscaling_is_nearest_by_a_whole_factor():
    assert (encode.display_factor(64), encode.display_factor(128), encode.display_factor(512)) == (4, 2, 1)
    frame = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    big = encode.upscale(frame, 3)
    assert big.shape == (6, 6, 3)
    np.testing.assert_array_equal(big[::3, ::3], frame)
    np.testing.assert_array_equal(big[2, 5], frame[0, 1])


@pytest.mark.parametrize("bad", [np.zeros((0, 4, 4, 3), np.uint8), np.zeros((2, 4, 4), np.uint8)])
def test_encoders_refuse_what_is_not_a_video(bad):
    with pytest.raises(ValueError, match="expected uint8 video"):
        encode.encode_gif(bad, fps=5)

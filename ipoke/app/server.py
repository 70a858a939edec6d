"""The poking web app: an ASGI server around a loaded sampling pipeline.

``create_app(pipeline, **options)`` builds a FastAPI app around any object with the ``PokePipeline``
interface (``size``, ``n_frames``, ``max_pokes``, ``sample(...)``, ``test_frames()``); the model is loaded
once by the caller (``ipoke serve``) and shared by all requests. Model calls and video encoding run on a
fixed pool of worker threads behind a bounded queue (:mod:`ipoke.app.jobs`); images and videos live in
LRU-bounded memory stores and are served by opaque ids only.

JSON API (interactive reference with schemas at ``/docs``; every error is ``{"detail": "<message>"}``):

``GET /api/info``
    Model and limits: ``size``, ``n_frames``, ``max_pokes``, ``max_samples``, ``fps``, upload limits,
    ``poke_colors`` and the queue state.
``GET /api/frames``
    Test-split start frames to poke: ``[{id, name, width, height, url}]``.
``POST /api/images``
    Upload an image as the raw request body (``Content-Type: image/png``, ``image/jpeg`` or ``image/webp``;
    e.g. ``curl --data-binary @cat.jpg -H 'Content-Type: image/jpeg' .../api/images``). It is centre-cropped
    to a square (what the model sees) and returned as ``{id, name, width, height, url, crop}``; ``crop`` says
    what was kept of a non-square image (``"image 200x128: using its centre 128x128 square (x 36..163)"``).
    Errors: 413 too large (bytes or pixels), 415 not a PNG/JPEG/WebP, 422 too small.
``GET /api/images/{id}.png``
    An uploaded or test image, as the model sees it.
``POST /api/samples``
    ``{"image_id": str, "pokes": [{"x", "y", "dx", "dy"}], "n_samples": int, "seed": int,
    "temperature": float}``; pokes in the image's pixel coordinates (x right, y down), 0 to ``max_pokes``
    of them (none: the unpoked object), start and target inside the image. Waits for the videos and
    returns ``{id, image_id, seed, n_samples, n_frames, fps, elapsed_s, videos: [{id, sample, gif_url,
    mp4_url}]}``. Errors: 404 unknown image, 422 bad input, 503 queue full (with ``Retry-After``).
``GET /api/videos/{id}.gif`` and ``GET /api/videos/{id}.mp4``
    One sampled video with its pokes drawn, upscaled for display: a looping GIF or H.264 MP4.
``POST /api/videos/{id}/continue``
    Register the video's last frame as a new image (``{id, name, width, height, url}``) to poke again, as in
    the authors' GUI.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from importlib import resources
from typing import Annotated, Any, Protocol

import numpy as np
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from ipoke.app import encode
from ipoke.app.images import ACCEPTED_FORMATS, ImageRejected, decode_upload, square_crop
from ipoke.app.jobs import JobQueue, QueueFull
from ipoke.app.settings import AppSettings
from ipoke.app.store import LruStore, is_valid_id
from ipoke.errors import IpokeError
from ipoke.image_crop import crop_note
from ipoke.viz import POKE_COLORS, Poke, draw_pokes, hex_color

log = logging.getLogger("ipoke.app")

STATIC_FILES = {"app.js": "text/javascript", "style.css": "text/css"}


class Pipeline(Protocol):
    size: int
    n_frames: int
    max_pokes: int

    def sample(
        self, image: np.ndarray, pokes: list[Poke], n: int, seed: int, temperature: float = 1.0
    ) -> np.ndarray: ...

    def test_frames(self) -> list[tuple[str, np.ndarray]]: ...


@dataclass
class StoredImage:
    name: str
    pixels: np.ndarray  # uint8 (S, S, 3)
    png: bytes
    crop: str = ""  # how the upload became this square (ipoke.image_crop.crop_note), "" if it was square


@dataclass
class StoredVideo:
    frames: np.ndarray  # uint8 (T, size, size, 3) as sampled, without drawings
    display_pokes: list[Poke]  # pokes in display pixels
    gif: bytes
    mp4: bytes | None = field(default=None)


class PokeIn(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    x: float = Field(description="poked pixel, from the left edge")
    y: float = Field(description="poked pixel, from the top edge")
    dx: float = Field(description="displacement to the target, rightwards")
    dy: float = Field(description="displacement to the target, downwards")


class SampleRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    image_id: str
    pokes: list[PokeIn] = Field(default_factory=list, description="none: sample the unpoked object")
    n_samples: Annotated[int, Field(ge=1)] = 4
    seed: Annotated[int, Field(ge=0, le=2**31 - 1)] = 0
    temperature: Annotated[float, Field(gt=0.0, le=2.0)] = 1.0


class ImageOut(BaseModel):
    id: str
    name: str
    width: int
    height: int
    url: str
    crop: str = ""


class VideoOut(BaseModel):
    id: str
    sample: int
    gif_url: str
    mp4_url: str


class SampleOut(BaseModel):
    image_id: str
    seed: int
    n_samples: int
    n_frames: int
    fps: float
    elapsed_s: float
    videos: list[VideoOut]


def _image_out(key: str, image: StoredImage) -> ImageOut:
    height, width = image.pixels.shape[:2]
    return ImageOut(
        id=key, name=image.name, width=width, height=height, url=f"/api/images/{key}.png", crop=image.crop
    )


def _check_pokes(pokes: list[PokeIn], width: int, height: int, max_pokes: int) -> list[Poke]:
    if len(pokes) > max_pokes:
        raise HTTPException(422, f"{len(pokes)} pokes given; the model takes at most {max_pokes}")
    checked = []
    for number, poke in enumerate(pokes, start=1):
        for what, (px, py) in (("start", (poke.x, poke.y)), ("target", (poke.x + poke.dx, poke.y + poke.dy))):
            if not (0 <= px < width and 0 <= py < height):
                raise HTTPException(
                    422, f"poke {number}: {what} ({px:g}, {py:g}) lies outside the {width}x{height} image"
                )
        checked.append((poke.x, poke.y, poke.dx, poke.dy))
    return checked


def _static(name: str) -> bytes:
    return resources.files("ipoke.app").joinpath("static", name).read_bytes()


def create_app(pipeline: Pipeline, **options: Any) -> FastAPI:
    """The app around ``pipeline``; ``options`` override fields of :class:`AppSettings`."""
    settings = AppSettings(**options)
    size, n_frames, max_pokes = int(pipeline.size), int(pipeline.n_frames), int(pipeline.max_pokes)
    factor = encode.display_factor(size, settings.display_size)
    queue = JobQueue(settings.max_concurrency, settings.max_queue)
    images: LruStore[StoredImage] = LruStore(settings.max_images)
    videos: LruStore[StoredVideo] = LruStore(settings.max_videos)

    def add_image(name: str, pixels: np.ndarray, pinned: bool = False) -> str:
        square = square_crop(pixels, max(settings.stored_side, size))
        stored = StoredImage(name, square, encode.encode_png(square), crop_note(pixels.shape))
        return images.add(stored, pinned=pinned)

    test_frame_ids = [
        add_image(name, pixels, pinned=True)
        for name, pixels in pipeline.test_frames()[: settings.max_test_frames]
    ]

    def render(frames: np.ndarray, display_pokes: list[Poke]) -> np.ndarray:
        return draw_pokes(encode.upscale(frames, factor), display_pokes)

    def sample_job(
        image: StoredImage, pokes: list[Poke], n: int, seed: int, temperature: float
    ) -> list[StoredVideo]:
        result = np.asarray(pipeline.sample(image.pixels, pokes, n, seed, temperature))
        expected = (n, n_frames, size, size, 3)
        if result.dtype != np.uint8 or result.shape != expected:
            raise RuntimeError(f"pipeline returned {result.dtype} {result.shape}, expected uint8 {expected}")
        scale = size * factor / image.pixels.shape[1]
        display_pokes = [(x * scale, y * scale, dx * scale, dy * scale) for x, y, dx, dy in pokes]
        return [
            StoredVideo(frames, display_pokes, encode.encode_gif(render(frames, display_pokes), settings.fps))
            for frames in result
        ]

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        queue.shutdown()

    app = FastAPI(
        title="iPOKE",
        summary="Poke a still image, get plausible videos of how the object moves.",
        version="1",
        lifespan=lifespan,
    )
    app.state.queue = queue

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, err: RequestValidationError) -> JSONResponse:
        parts = [
            f"{'.'.join(str(p) for p in e['loc'] if p != 'body') or 'body'}: {e['msg']}" for e in err.errors()
        ]
        return JSONResponse({"detail": "; ".join(parts)}, status_code=422)

    async def run_job(fn, *args):
        try:
            return await queue.run(fn, *args)
        except QueueFull as err:
            raise HTTPException(503, str(err), headers={"Retry-After": str(err.retry_after_s)}) from err

    def get_image(key: str) -> StoredImage:
        image = images.get(key)
        if image is None:
            raise HTTPException(404, _missing("image", key))
        return image

    def get_video(key: str) -> StoredVideo:
        video = videos.get(key)
        if video is None:
            raise HTTPException(404, _missing("video", key))
        return video

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> HTMLResponse:
        return HTMLResponse(_static("index.html"))

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        if name not in STATIC_FILES:  # a fixed list: nothing a client names reaches the file system
            raise HTTPException(404, "not found")
        return Response(_static(name), media_type=STATIC_FILES[name])

    @app.get("/api/info")
    def info() -> dict[str, Any]:
        return {
            "size": size,
            "n_frames": n_frames,
            "max_pokes": max_pokes,
            "max_samples": settings.max_samples,
            "fps": settings.fps,
            "display_size": size * factor,
            "max_upload_bytes": settings.max_upload_bytes,
            "max_image_side": settings.max_image_side,
            "min_image_side": settings.min_image_side,
            "accepted_types": sorted(ACCEPTED_FORMATS.values()),
            "poke_colors": [hex_color(c) for c in POKE_COLORS],
            "queue": queue.stats(),
        }

    @app.get("/api/frames")
    def frames() -> list[ImageOut]:
        return [_image_out(key, get_image(key)) for key in test_frame_ids]

    @app.post(
        "/api/images",
        status_code=201,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    t: {"schema": {"type": "string", "format": "binary"}} for t in ACCEPTED_FORMATS.values()
                },
            }
        },
    )
    async def upload_image(request: Request) -> ImageOut:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type not in ACCEPTED_FORMATS.values():
            raise HTTPException(
                415,
                f"Content-Type {content_type or '(none)'} is not accepted; send image/png, "
                "image/jpeg or image/webp as the raw request body",
            )
        limit = settings.max_upload_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise HTTPException(413, f"upload is {int(declared)} bytes; the limit is {limit} bytes")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise HTTPException(413, f"upload is larger than the limit of {limit} bytes")
        if not body:
            raise HTTPException(422, "the request body is empty; send the image bytes")
        try:  # decoding a large photo takes a while: keep it off the event loop
            pixels = await run_in_threadpool(
                decode_upload, bytes(body), settings.max_image_side, settings.min_image_side
            )
        except ImageRejected as err:
            raise HTTPException(err.status, str(err)) from err
        key = await run_in_threadpool(add_image, "upload", pixels)
        return _image_out(key, get_image(key))

    @app.get("/api/images/{image_id}.png", response_class=Response)
    def image_png(image_id: str) -> Response:
        return Response(get_image(image_id).png, media_type="image/png", headers=_immutable())

    @app.post("/api/samples")
    async def sample(body: SampleRequest) -> SampleOut:
        image = get_image(body.image_id)
        if body.n_samples > settings.max_samples:
            raise HTTPException(422, f"n_samples is {body.n_samples}; the limit is {settings.max_samples}")
        height, width = image.pixels.shape[:2]
        pokes = _check_pokes(body.pokes, width, height, max_pokes)
        start = time.perf_counter()
        try:
            sampled = await run_job(sample_job, image, pokes, body.n_samples, body.seed, body.temperature)
        except IpokeError as err:
            raise HTTPException(422, str(err)) from err
        elapsed = time.perf_counter() - start
        outs = []
        for index, video in enumerate(sampled):
            key = videos.add(video)
            outs.append(
                VideoOut(
                    id=key, sample=index, gif_url=f"/api/videos/{key}.gif", mp4_url=f"/api/videos/{key}.mp4"
                )
            )
        log.info("sampled %d videos with %d pokes in %.2f s", body.n_samples, len(pokes), elapsed)
        return SampleOut(
            image_id=body.image_id,
            seed=body.seed,
            n_samples=body.n_samples,
            n_frames=n_frames,
            fps=settings.fps,
            elapsed_s=round(elapsed, 4),
            videos=outs,
        )

    @app.get("/api/videos/{video_id}.gif", response_class=Response)
    def video_gif(video_id: str) -> Response:
        return Response(
            get_video(video_id).gif, media_type="image/gif", headers=_immutable(f"ipoke-{video_id}.gif")
        )

    @app.get("/api/videos/{video_id}.mp4", response_class=Response)
    async def video_mp4(video_id: str) -> Response:
        video = get_video(video_id)
        if video.mp4 is None:
            video.mp4 = await run_job(
                lambda: encode.encode_mp4(render(video.frames, video.display_pokes), settings.fps)
            )
        return Response(video.mp4, media_type="video/mp4", headers=_immutable(f"ipoke-{video_id}.mp4"))

    @app.post("/api/videos/{video_id}/continue", status_code=201)
    def continue_video(video_id: str) -> ImageOut:
        video = get_video(video_id)
        key = add_image("continued", video.frames[-1])
        return _image_out(key, get_image(key))

    return app


def _missing(kind: str, key: str) -> str:
    if not is_valid_id(key):
        return f"malformed {kind} id: ids are 16 lowercase hex digits, as returned by the API"
    return f"no {kind} with id {key}: unknown, or dropped from memory to make room for newer ones"


def _immutable(filename: str | None = None) -> dict[str, str]:
    """Content behind an id never changes; videos also get a file name for downloads."""
    headers = {"Cache-Control": "private, max-age=3600, immutable"}
    if filename is not None:
        headers["Content-Disposition"] = f'inline; filename="{filename}"'
    return headers

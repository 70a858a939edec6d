"""``ipoke sample``: poke a still image and write the sampled videos as a looping GIF or an MP4.

    ipoke sample --image img.png --poke 40,32,8,-4 [--poke ...] --n 5 --out samples.gif

Pokes are ``x,y,dx,dy`` in the image's pixels (x right, y down): drag pixel (x, y) by (dx, dy). The image is
centre-cropped to a square (said on the terminal for a non-square image; pokes outside that square are
refused in the image's coordinates) and resized to the model's size; the samples are shown side by side,
upscaled, with an arrow per poke and a dot on its target. The format follows the extension of ``--out``.

Kinematics transfer (paper 4.2): ``--transfer-from video.mp4`` takes the residual kinematics of the source
video's first frames given the pokes (then in the video's pixels) and animates ``--image`` with them; the
output shows the source clip, the transfer and a random sample for the same image and pokes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from ipoke.errors import IpokeError

FORMATS = (".gif", ".mp4")


def parse_poke(text: str) -> tuple[float, float, float, float]:
    parts = text.split(",")
    try:
        if len(parts) != 4:
            raise ValueError
        x, y, dx, dy = (float(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"poke {text!r}: expected x,y,dx,dy (four numbers)") from None
    return x, y, dx, dy


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--image", type=Path, required=True, help="start frame (PNG, JPEG, WebP, ...)")
    p.add_argument(
        "--poke",
        type=parse_poke,
        action="append",
        default=[],
        metavar="X,Y,DX,DY",
        help="a poke in the image's pixels; repeat for several (none: the unpoked object)",
    )
    p.add_argument("--n", type=int, default=5, help="samples (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampled residuals (default: %(default)s)")
    p.add_argument("--temperature", type=float, default=1.0, help="scale of the residual (default: 1.0)")
    p.add_argument("--out", type=Path, required=True, help="output video: .gif or .mp4")
    p.add_argument("--model", type=Path, help="pipeline directory (default: models/<dataset>/pipeline)")
    p.add_argument("--device", default="auto", help="torch device: auto, cpu, cuda, cuda:1, ...")
    p.add_argument("--fps", type=float, default=5.0, help="frame rate of the output (default: %(default)s)")
    p.add_argument("--display-size", type=int, default=128, help="approximate shown size of one video, px")
    p.add_argument("--transfer-from", type=Path, help="source video whose kinematics animate --image")
    p.add_argument("--step", type=int, default=1, help="source frames per model frame for --transfer-from")


def read_image(path: Path) -> np.ndarray:
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return np.asarray(ImageOps.exif_transpose(image).convert("RGB"), dtype=np.uint8).copy()
    except FileNotFoundError:
        raise IpokeError(f"{path}: no such image") from None
    except (UnidentifiedImageError, OSError) as err:
        raise IpokeError(f"{path}: not a readable image ({err})") from None


def read_clip(path: Path, n_frames: int, step: int) -> np.ndarray:
    """The first ``n_frames`` frames of a video, every ``step``-th one: uint8 (T, H, W, 3)."""
    from ipoke.data.video import probe

    info = probe(path)  # names the file when it cannot be decoded
    need = (n_frames - 1) * step + 1
    if info.n_frames < need:
        raise IpokeError(
            f"{path}: {info.n_frames} frames, the transfer needs {need} ({n_frames} frames at step {step})"
        )
    import decord

    reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
    return reader.get_batch(list(range(0, need, step))).asnumpy()


def side_by_side(videos: list[np.ndarray]) -> np.ndarray:
    """uint8 videos (T, H, W, 3) of equal shape -> one (T, H, n * W, 3)."""
    return np.concatenate(videos, axis=2)


def shown(frames: np.ndarray, model_pokes: np.ndarray, factor: int) -> np.ndarray:
    """Model-size frames upscaled for display with the pokes drawn."""
    from ipoke.app.encode import upscale
    from ipoke.viz import draw_pokes

    return draw_pokes(upscale(frames, factor), (model_pokes * factor).tolist())


def encode(frames: np.ndarray, out: Path, fps: float) -> None:
    from ipoke.app.encode import encode_gif, encode_mp4
    from ipoke.atomic import write_bytes

    data = encode_gif(frames, fps) if out.suffix.lower() == ".gif" else encode_mp4(frames, fps)
    write_bytes(out, data)


def transfer(pipeline, args: argparse.Namespace, image: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Source clip, its kinematics on ``image`` and a random sample; and the pokes in model pixels."""
    from ipoke.metrics.videos import float_to_uint8, uint8_to_float
    from ipoke.sampling import model_view

    clip = read_clip(args.transfer_from, pipeline.n_frames, args.step)
    pokes = pipeline.model_pokes(clip[0], args.poke)
    source = np.stack([model_view(frame, pipeline.size)[0] for frame in clip])
    target = model_view(image, pipeline.size)[0]
    poke = pipeline.poke_map(pokes)[None]
    residual = pipeline.residual(uint8_to_float(source)[None], poke)
    x0 = uint8_to_float(target)[None]
    moved = pipeline.render(x0, poke, residual)[0]
    sample = pipeline.sample_batch(x0, poke, 1, args.seed, args.temperature)[0, 0]
    return [source, *float_to_uint8(torch.stack([moved, sample]))], pokes


def run(args: argparse.Namespace) -> int:
    from ipoke.app.cli import model_dir
    from ipoke.app.encode import display_factor
    from ipoke.image_crop import check_pokes, crop_note
    from ipoke.sampling import PokePipeline

    if args.out.suffix.lower() not in FORMATS:
        raise IpokeError(f"{args.out}: unknown output format; use one of {', '.join(FORMATS)}")
    if args.n < 1 or args.step < 1:
        raise IpokeError("--n and --step must be at least 1")
    image = read_image(args.image)
    note = crop_note(image.shape)
    if note:
        print(f"{args.image}: {note}")
    check_pokes(image.shape, [] if args.transfer_from is not None else args.poke)
    pipeline = PokePipeline.load(model_dir(args.model), device=args.device)
    if args.transfer_from is not None:
        videos, pokes = transfer(pipeline, args, image)
    else:
        videos = list(pipeline.sample(image, args.poke, args.n, args.seed, args.temperature))
        pokes = pipeline.model_pokes(image, args.poke)
    factor = display_factor(pipeline.size, args.display_size)
    encode(side_by_side([shown(v, pokes, factor) for v in videos]), args.out, args.fps)
    print(f"wrote {len(videos)} video(s) of {pipeline.n_frames} frames to {args.out}")
    return 0

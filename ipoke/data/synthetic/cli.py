"""``ipoke synth``: tools for the synthetic poking world.

``ipoke synth preview`` writes a GIF grid of synthetic videos with their pokes drawn, either from a
generated dataset directory (default ``data/raw/synthetic``) or, with ``--generate``, from videos made
on the fly with the ``download.synthetic`` params.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ipoke.errors import IpokeError


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="synth_command", required=True)
    pv = sub.add_parser("preview", help="write a GIF grid of videos with the poke arrows drawn")
    pv.add_argument(
        "--data", type=Path, default=Path("data/raw/synthetic"), help="generated dataset directory"
    )
    pv.add_argument("--generate", action="store_true", help="render new videos from params.yaml instead")
    pv.add_argument(
        "--params", type=Path, default=None, help="params file for --generate (default params.yaml)"
    )
    pv.add_argument("--out", type=Path, default=Path("synthetic_preview.gif"))
    pv.add_argument("--videos", type=int, default=8, help="number of videos in the grid")
    pv.add_argument("--columns", type=int, default=4)
    pv.add_argument("--scale", type=int, default=2, help="pixel upscaling of each video")
    pv.add_argument("--split", choices=["train", "test", "all"], default="all")


def _from_dataset(data: Path, n: int, split: str) -> tuple[list, float]:
    from ipoke.data import manifest
    from ipoke.data.synthetic.groundtruth import load_gt
    from ipoke.data.synthetic.video import read_mp4

    table = manifest.read(data)
    if "gt_path" not in table.columns:
        raise IpokeError(f"{data / manifest.MANIFEST_NAME}: no gt_path column; not a synthetic dataset")
    if split != "all":
        table = table[table["split"] == split]
    # One video per instance first, so the grid shows as many different objects as possible.
    table = table.sort_values(["video_id"]).drop_duplicates("object_id").head(n)
    if table.empty:
        raise IpokeError(f"{data}: no videos in split '{split}'")
    videos = [(read_mp4(data / row.path), load_gt(data / row.gt_path)) for row in table.itertuples()]
    return videos, float(table["fps"].iloc[0])


def _generated(params_path: Path | None, n: int, split: str) -> tuple[list, float]:
    from ipoke.config import parse_section, read_params
    from ipoke.data.sources.synthetic import Params
    from ipoke.data.synthetic import world

    raw = (read_params(params_path).get("download") or {}).get("synthetic")
    params = parse_section("download.synthetic", raw, Params, str(params_path or "params.yaml"))
    specs = [s for s in world.plan(params) if s.video_index == 0 and split in ("all", s.split)][:n]
    return [world.render_video(params, s) for s in specs], params.fps


def run(args: argparse.Namespace) -> int:
    from ipoke.app.encode import encode_gif
    from ipoke.atomic import write_bytes
    from ipoke.data.synthetic.preview import draw_pokes, tile

    if args.videos < 1 or args.columns < 1 or args.scale < 1:
        raise IpokeError("--videos, --columns and --scale must be positive")
    if args.generate:
        videos, fps = _generated(args.params, args.videos, args.split)
    else:
        videos, fps = _from_dataset(args.data, args.videos, args.split)
    grid = tile([draw_pokes(frames, gt, args.scale) for frames, gt in videos], min(args.columns, len(videos)))
    write_bytes(args.out, encode_gif(grid, fps))
    print(f"wrote {args.out} ({len(videos)} videos, {len(grid)} frames)")
    return 0

"""``ipoke serve``: load a trained pipeline once and serve the poking web app on it."""

from __future__ import annotations

import argparse
from pathlib import Path

from ipoke.app.settings import AppSettings
from ipoke.errors import IpokeError

DEFAULTS = AppSettings()


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model", type=Path, help="trained pipeline directory (default: models/<dataset>/pipeline)"
    )
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: %(default)s)")
    p.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    p.add_argument(
        "--device", default="auto", help="torch device for the model: auto, cpu, cuda, cuda:1, ..."
    )
    p.add_argument(
        "--workers",
        type=int,
        default=DEFAULTS.max_concurrency,
        help="threads running model calls (default: %(default)s)",
    )
    p.add_argument(
        "--max-queue",
        type=int,
        default=DEFAULTS.max_queue,
        help="requests that may wait for a worker before the server answers 503 (default: %(default)s)",
    )
    p.add_argument(
        "--max-samples",
        type=int,
        default=DEFAULTS.max_samples,
        help="samples per request (default: %(default)s)",
    )
    p.add_argument(
        "--max-connections",
        type=int,
        default=128,
        help="open connections beyond which uvicorn answers 503 at once (default: %(default)s)",
    )
    p.add_argument(
        "--fps", type=float, default=DEFAULTS.fps, help="frame rate of the videos (default: %(default)s)"
    )


def model_dir(arg: Path | None) -> Path:
    if arg is not None:
        directory = arg
    else:
        from ipoke.stage import dataset_name

        directory = Path("models") / dataset_name() / "pipeline"
    if not directory.is_dir():
        raise IpokeError(
            f"model directory {directory} not found: train one with `make repro` (it writes "
            "models/<dataset>/pipeline) or pass --model <dir> pointing at a trained pipeline"
        )
    return directory


def run(args: argparse.Namespace) -> int:
    directory = model_dir(args.model)
    import uvicorn

    from ipoke.app.server import create_app
    from ipoke.sampling import PokePipeline

    print(f"loading the pipeline from {directory} ...", flush=True)
    pipeline = PokePipeline.load(directory, device=args.device)
    app = create_app(
        pipeline,
        max_concurrency=args.workers,
        max_queue=args.max_queue,
        max_samples=args.max_samples,
        fps=args.fps,
    )
    print(f"poking app on http://{args.host}:{args.port}/ (API reference at /docs)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, limit_concurrency=args.max_connections, log_level="info")
    return 0

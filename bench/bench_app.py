"""Request latency of the poking app against a local server around a trained pipeline.

Three scenarios, each timing whole ``POST /api/samples`` requests (model call, GIF encoding, JSON):
one sample per request, five samples per request (both from a single client), and ten concurrent clients
asking for one sample each. Prints p50/p95 per scenario and writes bench/results/app.json.

    uv run python bench/bench_app.py [--model models/<dataset>/pipeline] [--requests 20]

Without a trained model it says what is missing and exits 0 without numbers.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

from ipoke import atomic
from ipoke.stage import dataset_name, progress

RESULTS = Path(__file__).parent / "results" / "app.json"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", type=Path, help="trained pipeline directory (default: models/<dataset>/pipeline)"
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--requests", type=int, default=20, help="timed requests per scenario (default: 20)")
    parser.add_argument("--clients", type=int, default=10, help="concurrent clients (default: 10)")
    parser.add_argument("--workers", type=int, default=1, help="server worker threads (default: 1)")
    return parser.parse_args()


def summary(latencies: list[float], wall_s: float) -> dict[str, float]:
    values = np.asarray(latencies)
    return {
        "requests": len(values),
        "p50_s": float(np.percentile(values, 50)),
        "p95_s": float(np.percentile(values, 95)),
        "mean_s": float(values.mean()),
        "max_s": float(values.max()),
        "requests_per_s": len(values) / wall_s,
    }


class LocalServer:
    """uvicorn on 127.0.0.1 and a free port, in a background thread."""

    def __init__(self, app):
        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the benchmark server did not start")
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *_exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def timed_request(client: httpx.Client, body: dict) -> float:
    start = time.perf_counter()
    response = client.post("/api/samples", json=body)
    elapsed = time.perf_counter() - start
    response.raise_for_status()
    return elapsed


def sequential(base: str, body: dict, requests: int, desc: str) -> dict[str, float]:
    with httpx.Client(base_url=base, timeout=600) as client:
        start = time.perf_counter()
        latencies = [timed_request(client, body) for _ in progress(range(requests), desc)]
        return summary(latencies, time.perf_counter() - start)


def concurrent(base: str, body: dict, requests: int, clients: int) -> dict[str, float]:
    """``clients`` threads, each with its own connection, together sending ``requests`` requests."""
    per_client = [requests // clients + (i < requests % clients) for i in range(clients)]

    def client_run(count: int) -> list[float]:
        with httpx.Client(base_url=base, timeout=600) as client:
            return [timed_request(client, body) for _ in range(count)]

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        latencies = [t for batch in pool.map(client_run, per_client) for t in batch]
    return summary(latencies, time.perf_counter() - start)


def run_benchmark(pipeline, requests: int, clients: int, workers: int) -> dict:
    from ipoke.app.server import create_app

    app = create_app(pipeline, max_concurrency=workers, max_queue=clients, max_samples=5)
    with LocalServer(app) as base:
        with httpx.Client(base_url=base, timeout=600) as client:
            frames = client.get("/api/frames").json()
            if not frames:
                raise SystemExit("the pipeline has no test frames to poke")
            image = frames[0]
        x, y = image["width"] / 2, image["height"] / 2
        poke = {"x": x, "y": y, "dx": image["width"] / 8, "dy": -image["height"] / 16}
        body = {"image_id": image["id"], "pokes": [poke], "seed": 0}
        sequential(base, body | {"n_samples": 5}, 2, "warm-up")
        concurrent_requests = max(requests, 2 * clients)
        return {
            "setup": {
                "size": pipeline.size,
                "n_frames": pipeline.n_frames,
                "server_workers": workers,
                "clients": clients,
                "image": image["name"],
            },
            "one_sample": sequential(base, body | {"n_samples": 1}, requests, "1 sample"),
            "five_samples": sequential(base, body | {"n_samples": 5}, requests, "5 samples"),
            f"{clients}_clients_one_sample": concurrent(
                base, body | {"n_samples": 1}, concurrent_requests, clients
            ),
        }


def main() -> int:
    args = parse_args()
    model = args.model or Path("models") / dataset_name() / "pipeline"
    if not model.is_dir():
        print(f"bench_app: trained model missing at {model} (run `make repro` first); no numbers recorded")
        return 0
    from ipoke.sampling import PokePipeline

    pipeline = PokePipeline.load(model, device=args.device)
    results = {"model": str(model), "device": args.device} | run_benchmark(
        pipeline, args.requests, args.clients, args.workers
    )
    for name, stats in results.items():
        if isinstance(stats, dict) and "p50_s" in stats:
            print(
                f"{name:>24}: p50 {stats['p50_s'] * 1000:8.1f} ms  p95 {stats['p95_s'] * 1000:8.1f} ms  "
                f"{stats['requests_per_s']:6.2f} req/s  ({stats['requests']} requests)"
            )
    atomic.write_text(RESULTS, json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

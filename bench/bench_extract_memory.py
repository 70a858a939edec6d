"""Peak memory of ``extract_frames`` on one large video: a 96-frame 4K (3840x2160) H.264 clip.

The clip is generated with the FFmpeg that imageio-ffmpeg ships (its ``testsrc2`` pattern). Extraction
runs in a fresh process with the stage's default params (64 px, two workers), which reports its peak
resident memory (max RSS) and that of the same process before extraction (Python and the libraries).
Target: at most 1 GB. Prints the numbers and writes bench/results/extract_memory.json.

    uv run python bench/bench_extract_memory.py [--frames 96] [--width 3840] [--height 2160]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import imageio_ffmpeg
import pandas as pd

from ipoke import atomic
from ipoke.data import manifest

RESULTS = Path(__file__).parent / "results" / "extract_memory.json"
MEASURE = """
import json, resource, sys, time
from pathlib import Path
from ipoke.data.frames import FramesParams, extract
raw, out = Path(sys.argv[1]), Path(sys.argv[2])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
result = extract(raw, out, FramesParams(), "folder")
print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "rss_before_mb": before / 1024, "seconds": time.perf_counter() - start,
                  "stored_frames": result.frames}))
"""


def make_video(path: Path, frames: int, width: int, height: int) -> None:
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi",
         "-i", f"testsrc2=size={width}x{height}:rate=25", "-frames:v", str(frames), "-c:v", "libx264",
         "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)],
        check=True,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=96)
    parser.add_argument("--width", type=int, default=3840)
    parser.add_argument("--height", type=int, default=2160)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        raw, out = Path(tmp) / "raw", Path(tmp) / "frames"
        (raw / "videos").mkdir(parents=True)
        out.mkdir()
        make_video(raw / "videos" / "big.mp4", args.frames, args.width, args.height)
        row = {"video_id": "big", "path": "videos/big.mp4", "object_id": "big", "split": "train", "fps": 25.0,
               "n_frames": args.frames, "width": args.width, "height": args.height, "sha256": ""}
        manifest.write(pd.DataFrame([row]), raw)
        done = subprocess.run(
            [sys.executable, "-c", MEASURE, str(raw), str(out)], capture_output=True, text=True, check=True
        )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result |= {"video": f"{args.frames} frames of {args.width}x{args.height}", "target_mb": 1024}
    print(json.dumps(result, indent=2))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(RESULTS, json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()

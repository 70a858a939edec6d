"""Everything an evaluation writes into its output directory, and the record that indexes it.

Layout (all paths in ``results.json`` are relative to the directory)::

    results.json      the record: run facts, metrics summary, not-computed reasons, curve points,
                      reference errors and poke spacing, figure and video file names, the protocol text
    per_clip.csv      one row per test clip
    ambiguity.csv     the Fig. 9 curve (n_pokes, mean_error, std_error, best_error)
    tables.md/.html   the paper-shaped tables with this run's rows
    figures/*.png     control errors, ambiguity curve, kinematics maps
    grids/*.gif|.mp4  GT | samples | no-poke | baseline videos with the pokes drawn
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ipoke.app.encode import encode_gif, encode_mp4
from ipoke.errors import IpokeError
from ipoke.evaluation import figures, tables
from ipoke.evaluation.results import EvaluationResults
from ipoke.metrics import MetricUnavailable

RESULTS_NAME = "results.json"
AMBIGUITY_COLUMNS = ("n_pokes", "mean_error", "std_error", "best_error")


def read_record(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / RESULTS_NAME
    if not path.is_file():
        raise IpokeError(f"{path}: no evaluation results; run the evaluate stage first (dvc repro evaluate)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise IpokeError(f"{path}: not valid JSON ({err}); rerun the evaluate stage") from err


def ambiguity_csv(results: EvaluationResults) -> str:
    """The curve as CSV (header only when it was not computed)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(AMBIGUITY_COLUMNS)
    if not isinstance(results.ambiguity, MetricUnavailable):
        for p in results.ambiguity:
            writer.writerow([p.n_pokes, f"{p.mean_error:.6g}", f"{p.std_error:.6g}", f"{p.best_error:.6g}"])
    return buffer.getvalue()


def _per_clip_csv(results: EvaluationResults) -> str:
    columns = results.per_clip()
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in zip(*columns.values(), strict=True):
        writer.writerow([f"{v:.6g}" if isinstance(v, float) else v for v in row])
    return buffer.getvalue()


def build_record(results: EvaluationResults, profile: str, protocol: str) -> dict[str, Any]:
    """``results.json`` without the file names (added by :func:`write_outputs`)."""
    ambiguity: dict[str, Any]
    if isinstance(results.ambiguity, MetricUnavailable):
        ambiguity = results.ambiguity.as_record()
    else:
        ambiguity = {
            "error": results.ambiguity_error,
            "points": [asdict(p) for p in results.ambiguity],
            "reference": results.ambiguity_reference,
            "poke_spacing_px": results.ambiguity_poke_spacing,
        }
    return {
        "dataset": results.dataset,
        "profile": profile,
        "size": results.size,
        "n_frames": results.n_frames,
        "n_clips": results.n_clips,
        "n_samples": results.n_samples,
        "poke_conditioned": results.poke_conditioned,
        "seconds": round(results.seconds, 2),
        "metrics": results.summary(),
        "not_computed": [u.as_record() for u in results.not_computed()],
        "ambiguity": ambiguity,
        "protocol": protocol,
    }


def write_outputs(
    results: EvaluationResults, directory: str | Path, profile: str, protocol: str, fps: float
) -> dict[str, Any]:
    """Write the layout of the module docstring into ``directory``; returns the record."""
    directory = Path(directory)
    (directory / "figures").mkdir(parents=True, exist_ok=True)
    (directory / "grids").mkdir(exist_ok=True)
    record = build_record(results, profile, protocol)
    files: dict[str, str] = {}
    keypoints = None if isinstance(results.keypoint_error, MetricUnavailable) else results.keypoint_error
    panels = figures.control_panels(results.control_error, keypoints)
    files["control"] = _write(directory, "figures/control.png", figures.control_figure(panels))
    if not isinstance(results.ambiguity, MetricUnavailable):
        png = figures.ambiguity_figure(
            results.ambiguity, results.ambiguity_error, results.ambiguity_reference
        )
        files["ambiguity"] = _write(directory, "figures/ambiguity.png", png)
    record["figures"] = files
    record["kinematics"] = [
        {
            "clip_id": k.clip_id,
            "location": list(k.map.location),
            "n_pokes": k.n_pokes,
            "max_shift_px": round(k.max_shift, 3),
            "mean_variance_px2": float(k.map.variance.mean()),
            "figure": _write(directory, f"figures/kinematics_{i}.png", figures.kinematics_figure(k)),
        }
        for i, k in enumerate(results.kinematics)
    ]
    record["grids"] = []
    for i, grid in enumerate(results.grids):
        video = figures.grid_video(grid)
        record["grids"].append(
            {
                "clip_id": grid.clip_id,
                "pokes": [[round(float(v), 2) for v in p] for p in grid.pokes],
                "columns": figures.grid_labels(grid),
                "gif": _write(directory, f"grids/grid_{i}.gif", encode_gif(video, fps)),
                "mp4": _write(directory, f"grids/grid_{i}.mp4", encode_mp4(video, fps)),
            }
        )
    (directory / "per_clip.csv").write_text(_per_clip_csv(results))
    (directory / "ambiguity.csv").write_text(ambiguity_csv(results))
    (directory / "tables.md").write_text(tables.markdown(record))
    (directory / "tables.html").write_text(tables.html(record))
    (directory / RESULTS_NAME).write_text(json.dumps(record, indent=2) + "\n")
    return record


def _write(directory: Path, name: str, data: bytes) -> str:
    (directory / name).write_bytes(data)
    return name

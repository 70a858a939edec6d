"""DVC stage ``estimate_flow``: start->end optical flow of every clip, and its error against GT.

Deps: ``data/frames/<dataset>/`` and ``data/raw/<dataset>/`` (synthetic GT sidecars). Outs:
``data/flow/<dataset>/`` (float16 flow per video, ``index.parquet``; see :mod:`ipoke.data.flow`) and
``metrics/estimate_flow.json`` (pairs, throughput, EPE of every method in ``epe_methods`` on the same
``epe_max_pairs`` GT pairs, EPE of the chosen method on all pairs; methods without weights are listed as
not computed).
"""

from __future__ import annotations

from pathlib import Path

from ipoke.atomic import atomic_path
from ipoke.data.flow import FlowParams, estimate
from ipoke.data.frames import read_index
from ipoke.stage import log, main_guard, progress, run_stage


def main() -> None:
    with run_stage("estimate_flow", FlowParams) as st:
        frames_dir = Path("data/frames") / st.dataset
        raw, out = Path("data/raw") / st.dataset, Path("data/flow") / st.dataset
        index = read_index(frames_dir)
        with atomic_path(out, directory=True) as tmp:
            result = estimate(frames_dir, index, raw, tmp, st.params, progress=progress)
        for method, reason in result.not_computed.items():
            log.warning("EPE of %s not computed: %s", method, reason)
        metrics = {
            "method": st.params.method,
            "pairs": result.pairs,
            "flow_mag_mean": float(result.index["mag_mean"].mean()),
            "flow_mag_p95": float(result.index["mag_p95"].mean()),
            "epe_not_computed": ",".join(sorted(result.not_computed)),
        }
        metrics |= {f"epe_{method}": round(value, 4) for method, value in result.epe.items()}
        if "epe" in result.index:  # the chosen method over every GT pair, and on object pixels only
            metrics["epe_all_pairs"] = round(float(result.index["epe"].mean()), 4)
            metrics["epe_object_all_pairs"] = round(float(result.index["epe_fg"].mean()), 4)
        st.write_metrics("metrics/estimate_flow.json", metrics)
        st.log_metrics({"pairs_per_s": result.pairs / max(result.seconds, 1e-9)})  # timings: MLflow only


if __name__ == "__main__":
    main_guard(main)

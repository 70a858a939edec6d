"""Log evaluation outputs to the pipeline's MLflow parent run as well as to the stage's own run.

The stage's child run holds everything already; the parent run (``ipoke repro`` / the Prefect flow) is
where experiments are compared, so tables, figures, the report and the headline metrics go there too.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

from ipoke.config import flatten
from ipoke.tracking import PARENT_ENV


def numeric(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Finite numbers of a nested metrics dict, flattened to ``a.b`` keys (not-computed records drop out)."""
    return {
        f"{prefix}{k}": float(v)
        for k, v in flatten(metrics).items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    }


def log_to_parent_run(
    paths: list[Path], artifact_path: str, metrics: dict[str, float] | None = None
) -> str | None:
    """Log ``paths`` (files or directories) and ``metrics`` to the parent run; returns its id, if any."""
    parent = os.environ.get(PARENT_ENV)
    if not parent:
        return None
    import mlflow
    from mlflow.entities import Metric

    client = mlflow.MlflowClient()
    for path in paths:
        if path.is_dir():
            client.log_artifacts(parent, str(path), artifact_path=f"{artifact_path}/{path.name}")
        elif path.is_file():
            client.log_artifact(parent, str(path), artifact_path=artifact_path)
    if metrics:
        now = int(time.time() * 1000)
        client.log_batch(parent, metrics=[Metric(k, v, now, 0) for k, v in metrics.items()])
    return parent

"""The one convention every DVC stage follows.

``with run_stage("name", Params) as st:`` validates the stage's params section, opens its MLflow run
(child of the pipeline run when there is one) and gives helpers for metrics and artifacts. Outputs are
written atomically with :func:`ipoke.atomic.atomic_path`; long loops use :func:`progress`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from tqdm.auto import tqdm

from ipoke import atomic
from ipoke.config import ParamsError, S, load_section, read_params
from ipoke.errors import IpokeError

log = logging.getLogger("ipoke")
T = TypeVar("T")


def progress(items: Iterable[T], desc: str, total: int | None = None, unit: str = "it") -> Iterator[T]:
    """A progress bar on stderr (hidden when ``IPOKE_NO_PROGRESS`` is set)."""
    disable = bool(os.environ.get("IPOKE_NO_PROGRESS"))
    return iter(
        tqdm(items, desc=desc, total=total, unit=unit, disable=disable, file=sys.stderr, dynamic_ncols=True)
    )


def dataset_name(params_path: str | os.PathLike | None = None) -> str:
    name = read_params(params_path).get("dataset")
    if not isinstance(name, str) or not name:
        raise ParamsError("params.yaml: top-level 'dataset' must name the dataset (e.g. synthetic)")
    return name


@dataclass
class Stage(Generic[S]):
    name: str
    params: S
    dataset: str

    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        import mlflow

        finite = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float) and math.isfinite(v)}
        if finite:
            mlflow.log_metrics(finite, step=step)

    def log_artifact(self, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        import mlflow

        path = Path(path)
        if path.is_dir():
            mlflow.log_artifacts(str(path), artifact_path=artifact_path)
        elif path.exists():
            mlflow.log_artifact(str(path), artifact_path=artifact_path)

    def write_metrics(self, path: str | os.PathLike, metrics: dict[str, Any]) -> None:
        """Write a DVC metrics file atomically and log its numeric entries to MLflow."""
        atomic.write_text(path, json.dumps(metrics, indent=2, sort_keys=True) + "\n")
        self.log_metrics(metrics)


@contextlib.contextmanager
def run_stage(name: str, model: type[S], params_path: str | os.PathLike | None = None) -> Iterator[Stage[S]]:
    """Validate params and run the body inside the stage's MLflow run.

    A ``ParamsError`` is raised before MLflow is touched, so a bad key costs nothing.
    """
    from ipoke.tracking import stage_run

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    params = load_section(name, model, params_path)
    dataset = dataset_name(params_path)
    with stage_run(name, dataset, {"dataset": dataset, name: params.model_dump(mode="json")}):
        log.info("stage %s on dataset %s", name, dataset)
        yield Stage(name=name, params=params, dataset=dataset)


def main_guard(fn) -> None:
    """Run a stage's main; turn expected user errors into one clear line and exit code 2."""
    try:
        fn()
    except (IpokeError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None

"""MLflow conventions shared by every stage.

* Tracking store: ``MLFLOW_TRACKING_URI`` if set, else a SQLite file ``mlflow.db`` in the project root.
* One experiment per dataset: ``ipoke-<dataset>``.
* One parent run per pipeline execution (git commit + all params); its id travels to the stages in the
  environment variable ``IPOKE_MLFLOW_PARENT_RUN_ID``; every stage opens a child run under it.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
import mlflow  # noqa: E402

from ipoke.config import flatten  # noqa: E402

PARENT_ENV = "IPOKE_MLFLOW_PARENT_RUN_ID"


def tracking_uri(project: Path | None = None) -> str:
    """The MLflow store: ``MLFLOW_TRACKING_URI``, else ``mlflow.db`` in ``project`` (default: cwd)."""
    return (
        os.environ.get("MLFLOW_TRACKING_URI")
        or f"sqlite:///{(project or Path.cwd()).resolve() / 'mlflow.db'}"
    )


def experiment_name(dataset: str) -> str:
    return f"ipoke-{dataset}"


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def _use_experiment(dataset: str, uri: str | None = None) -> None:
    mlflow.set_tracking_uri(uri or tracking_uri())
    mlflow.set_experiment(experiment_name(dataset))


def _log_params(params: dict[str, Any]) -> None:
    flat = {k: str(v)[:6000] for k, v in flatten(params).items()}
    items = list(flat.items())
    for i in range(0, len(items), 100):  # MLflow caps a batch at 100 params
        mlflow.log_params(dict(items[i : i + 100]))


def _tags(kind: str) -> dict[str, str]:
    tags = {"ipoke.kind": kind}
    commit = git_commit()
    if commit:
        tags["mlflow.source.git.commit"] = commit
    return tags


@contextlib.contextmanager
def pipeline_run(
    dataset: str, params: dict[str, Any], name: str = "pipeline", uri: str | None = None
) -> Iterator[str]:
    """Open the parent run of one pipeline execution and export its id to child processes."""
    _use_experiment(dataset, uri)
    with mlflow.start_run(run_name=name, tags=_tags("pipeline")) as run:
        _log_params(params)
        previous = os.environ.get(PARENT_ENV)
        os.environ[PARENT_ENV] = run.info.run_id
        try:
            yield run.info.run_id
        finally:
            if previous is None:
                os.environ.pop(PARENT_ENV, None)
            else:
                os.environ[PARENT_ENV] = previous


@contextlib.contextmanager
def stage_run(stage: str, dataset: str, params: dict[str, Any]) -> Iterator[mlflow.ActiveRun]:
    """Open a stage's run: a child of the pipeline run when one is active, else a standalone run."""
    _use_experiment(dataset)
    tags = _tags("stage") | {"ipoke.stage": stage}
    parent = os.environ.get(PARENT_ENV)
    if parent:
        tags["mlflow.parentRunId"] = parent
    nested = mlflow.active_run() is not None  # stage called in-process, e.g. from a notebook or test
    with mlflow.start_run(run_name=stage, tags=tags, nested=nested) as run:
        _log_params(params)
        yield run

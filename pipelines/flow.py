"""The iPOKE pipeline as a Prefect flow.

Each DVC stage becomes one Prefect task that asks DVC to reproduce exactly that stage
(``dvc repro --single-item``), so DVC's cache still decides what actually reruns while Prefect adds
retries, logs, states and schedules. Tasks run one after another in the DAG order DVC reports (DVC holds
a repository lock, so stages never run concurrently); every stage's MLflow run is a child of the flow's
parent run.

Run once:      ``uv run python -m pipelines.flow [stage ...]``
Schedule:      see ``prefect.yaml`` (nightly deployment) and the README.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import networkx as nx
from prefect import flow, get_run_logger, task

from ipoke.config import read_params
from ipoke.stage import dataset_name
from ipoke.tracking import PARENT_ENV, pipeline_run, tracking_uri


def stage_order(project: Path, targets: list[str] | None = None) -> list[str]:
    """Stage names in execution order (upstream first); restricted to ``targets`` and their ancestors."""
    from dvc.repo import Repo

    with Repo(str(project)) as repo:
        graph = repo.index.graph  # edges point from a stage to the stages it depends on
        names = {stage: stage.name for stage in graph.nodes}
        order = [names[s] for s in reversed(list(nx.topological_sort(graph)))]
        if not targets:
            return order
        unknown = sorted(set(targets) - set(order))
        if unknown:
            raise ValueError(f"unknown stage(s) {unknown}; dvc.yaml has {order}")
        wanted = set(targets)
        for stage, name in names.items():
            if name in targets:
                wanted |= {names[d] for d in nx.descendants(graph, stage)}
        return [n for n in order if n in wanted]


@task(retries=1, retry_delay_seconds=10, task_run_name="dvc repro {stage}")
def reproduce(stage: str, project: str, parent_run_id: str, mlflow_uri: str) -> str:
    """Reproduce one DVC stage (a no-op when its deps and params are unchanged)."""
    logger = get_run_logger()
    env = os.environ | {PARENT_ENV: parent_run_id, "MLFLOW_TRACKING_URI": mlflow_uri}
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", "repro", "--single-item", stage],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    for line in (proc.stdout + proc.stderr).splitlines():
        logger.info(line)
    if proc.returncode:
        raise RuntimeError(f"dvc repro {stage} failed with exit status {proc.returncode}")
    return "up to date" if "didn't change, skipping" in proc.stdout else "reproduced"


@flow(name="ipoke-pipeline", log_prints=True)
def ipoke_pipeline(targets: list[str] | None = None, project: str = ".") -> dict[str, str]:
    """Reproduce ``targets`` (default: every stage) in DAG order under one MLflow parent run."""
    root = Path(project).resolve()
    params_file = root / "params.yaml"
    uri = tracking_uri(root)
    with pipeline_run(dataset_name(params_file), read_params(params_file), name="prefect", uri=uri) as parent:
        return {s: reproduce(s, str(root), parent, uri) for s in stage_order(root, targets)}


if __name__ == "__main__":
    ipoke_pipeline(targets=sys.argv[1:] or None)

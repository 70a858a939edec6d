"""The Prefect flow reproduces DVC stages in DAG order, one task per stage, under an MLflow parent run."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import mlflow
import pytest
from prefect.testing.utilities import prefect_test_harness

from pipelines.flow import ipoke_pipeline, stage_order

DVC_YAML = """
stages:
  second:
    cmd: {py} -c "open('b.txt','w').write(open('a.txt').read() + 'b')"
    deps: [a.txt]
    outs: [b.txt]
  first:
    cmd: {py} make_a.py
    params: [first.n]
    outs: [a.txt]
  other:
    cmd: {py} -c "open('c.txt','w').write('c')"
    outs: [c.txt]
"""


@pytest.fixture(scope="module")
def harness():
    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def project(tmp_path):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "dvc.yaml").write_text(textwrap.dedent(DVC_YAML).format(py=sys.executable))
    (tmp_path / "params.yaml").write_text("dataset: toyflow\nfirst:\n  n: 2\n")
    (tmp_path / "make_a.py").write_text(
        "import yaml\n"
        "n = yaml.safe_load(open('params.yaml'))['first']['n']\n"
        "open('a.txt', 'w').write('a' * n)\n"
    )
    return tmp_path


def test_stage_order_follows_dependencies(project):
    order = stage_order(project)
    assert order.index("first") < order.index("second") and set(order) == {"first", "second", "other"}
    assert stage_order(project, ["second"]) == ["first", "second"]
    with pytest.raises(ValueError, match="unknown stage"):
        stage_order(project, ["nope"])


def test_flow_runs_every_stage_then_skips_unchanged(project, harness):
    state = ipoke_pipeline(project=str(project), return_state=True)
    assert state.is_completed()
    assert state.result() == {"first": "reproduced", "second": "reproduced", "other": "reproduced"}
    assert (project / "b.txt").read_text() == "aab"

    (project / "params.yaml").write_text("dataset: toyflow\nfirst:\n  n: 3\n")
    again = ipoke_pipeline(project=str(project))
    assert again == {"first": "reproduced", "second": "reproduced", "other": "up to date"}
    assert (project / "b.txt").read_text() == "aaab"

    runs = mlflow.search_runs(experiment_names=["ipoke-toyflow"], output_format="list")
    assert [r.info.run_name for r in runs] == ["prefect", "prefect"]
    assert {r.info.status for r in runs} == {"FINISHED"}


def test_deployment_declares_the_flow_and_a_valid_cron():
    from pathlib import Path

    import yaml
    from prefect.client.schemas.schedules import CronSchedule

    spec = yaml.safe_load((Path(__file__).parents[1] / "prefect.yaml").read_text())
    (dep,) = spec["deployments"]
    path, name = dep["entrypoint"].split(":")
    assert path == "pipelines/flow.py" and name == "ipoke_pipeline"
    schedule = CronSchedule(cron=dep["schedules"][0]["cron"], timezone=dep["schedules"][0]["timezone"])
    assert schedule.cron == "0 2 * * *"

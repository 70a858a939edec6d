import mlflow
import pytest

from ipoke.config import ParamsError, Section
from ipoke.stage import run_stage
from ipoke.tracking import PARENT_ENV, pipeline_run


class Params(Section):
    steps: int = 3


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("dataset: toy\nmystage:\n  steps: 5\n")
    return tmp_path


def test_stage_runs_are_children_of_the_pipeline_run(project):
    with pipeline_run("toy", {"mystage": {"steps": 5}}) as parent:
        with run_stage("mystage", Params, project / "params.yaml") as st:
            assert st.params.steps == 5 and st.dataset == "toy"
            st.write_metrics(project / "metrics" / "m.json", {"loss": 0.5, "note": "text", "n": 3})
    runs = mlflow.search_runs(experiment_names=["ipoke-toy"], output_format="list")
    by_name = {r.info.run_name: r for r in runs}
    child = by_name["mystage"]
    assert child.data.tags["mlflow.parentRunId"] == parent
    assert child.data.params["mystage.steps"] == "5"
    assert child.data.metrics == {"loss": 0.5, "n": 3.0}
    assert by_name["pipeline"].data.params["mystage.steps"] == "5"
    assert (project / "metrics" / "m.json").read_text().startswith("{")


def test_parent_env_restored(project, monkeypatch):
    monkeypatch.delenv(PARENT_ENV, raising=False)
    with pipeline_run("toy", {}):
        import os

        assert os.environ[PARENT_ENV]
    import os

    assert PARENT_ENV not in os.environ


def test_bad_params_fail_before_any_run(project):
    (project / "params.yaml").write_text("dataset: bad\nmystage:\n  stpes: 5\n")
    with pytest.raises(ParamsError, match="mystage.stpes: unknown key"):
        with run_stage("mystage", Params, project / "params.yaml"):
            pass
    assert mlflow.get_experiment_by_name("ipoke-bad") is None

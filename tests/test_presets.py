"""The paper's presets: what each table column fixes, how presets compose with params.yaml and -S, the CLI."""

from __future__ import annotations

import argparse
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from ipoke import preset_cli, presets
from ipoke.config import ParamsError

PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"
# Appendix E.1: d per dataset; section 4.3: Table 1 at 128 px, Tables 2 and 3 at 64 px.
PAPER_D = {"plants": 64, "h36m": 64, "iper": 32, "taichi": 32}


def resolved(name: str, *extra: str) -> dict:
    return presets.resolve(presets.set_args(name, list(extra)), PARAMS)


@pytest.mark.parametrize("name", presets.preset_names())
def test_every_preset_gives_valid_params_at_its_size_and_d_in_every_stage(name):
    params = resolved(name)
    presets.check(params)
    size, d = presets.PRESETS[name][1], PAPER_D[params["dataset"]]
    stages = presets.summary(params)
    for stage in ("extract_frames", "train_ae", "train_encoders", "train_cinn", "evaluate"):
        assert str(stages[stage]["frames"]).startswith(f"{size} px"), stage
    assert stages["train_ae"]["d"] == stages["train_cinn"]["d"] == d
    assert params["profile"] == "paper" and params["download"]["source"] == params["dataset"]
    assert stages["train_ae"]["batch"] == {64: 16, 128: 20}[size]
    assert (params["estimate_flow"]["method"], params["estimate_flow"]["ckpt"]) == ("flownet2", "things")
    assert params["estimate_flow"]["inference_size"] == 256 and not params["estimate_flow"]["chain"]


def test_presets_cover_the_columns_of_the_papers_tables():
    assert len(presets.preset_names()) == 8
    assert presets.tables("pp128") == [presets.PAPER_TABLES[0].title]
    assert presets.tables("h36m64") == [t.title for t in presets.PAPER_TABLES[1:]]
    assert presets.tables("iper64") == [presets.PAPER_TABLES[1].title]  # Table 3 has PP and H3.6M only
    assert all(presets.tables(name) for name in presets.preset_names())


def test_presets_set_the_same_keys_so_one_after_another_leaves_nothing_behind():
    keys = {tuple(presets.overrides(name)) for name in presets.preset_names()}
    assert len(keys) == 1
    after_another = presets.resolve(presets.set_args("pp128") + presets.set_args("iper64"), PARAMS)
    assert after_another == resolved("iper64")


def test_the_demo_profile_stays_the_default_and_h36m_clips_span_1_6_s():
    params = yaml.safe_load(PARAMS.read_text())
    assert params["profile"] == "demo" and params["dataset"] == "synthetic"
    step = resolved("h36m128")["extract_frames"]["step"]["h36m"]
    assert 10 * step / 50.0 == pytest.approx(1.6)  # x0 + 10 frames at every 8th frame of 50 Hz (6.25 Hz)


def test_set_params_after_a_preset_win_and_disagreeing_stages_are_refused():
    params = resolved("pp128", "train_cinn.paper.trainer.max_steps=10", "train_ae.paper.loader.batch_size=4")
    assert params["train_cinn"]["paper"]["trainer"]["max_steps"] == 10
    assert params["train_ae"]["paper"]["loader"]["batch_size"] == 4
    with pytest.raises(ParamsError, match="disagree on the latent depth d"):
        presets.check(resolved("pp128", "train_ae.paper.model.z_dim=16"))
    with pytest.raises(ParamsError, match="cannot set"):
        resolved("pp128", "train_ae.paper.model.no_such_key=1")
    with pytest.raises(ParamsError, match="unknown preset 'pp256'"):
        presets.overrides("pp256")


def test_apply_writes_the_preset_into_params_yaml_keeping_its_comments(tmp_path):
    path = tmp_path / "params.yaml"
    shutil.copyfile(PARAMS, path)
    presets.apply(path, presets.set_args("taichi128"))
    text = path.read_text()
    assert yaml.safe_load(text) == resolved("taichi128")
    assert "# Name of the dataset" in text and "# n_pokes uniform in 1..5 (paper)" in text


def test_override_values_in_dvcs_syntax():
    assert [presets.hydra_value(v) for v in (None, True, 256, 0.5, [64, 128], "things", "a b")] == [
        "null", "true", "256", "0.5", "[64,128]", "things", "'a b'",
    ]


def cli(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    preset_cli.add_arguments(parser)
    return parser.parse_args(argv)


def test_show_prints_every_stage_and_changes_nothing(tmp_path, monkeypatch, capsys):
    shutil.copyfile(PARAMS, tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    preset_cli.run(cli("show", "pp128", "-S", "train_cinn.paper.trainer.max_steps=10"))
    out = capsys.readouterr().out
    assert out.startswith("dvc exp run -S profile=paper -S dataset=plants")
    assert out.splitlines()[0].endswith("-S train_cinn.paper.trainer.max_steps=10")
    for stage in ("extract_frames", "estimate_flow", "train_ae", "train_encoders", "train_cinn", "evaluate"):
        assert f"\n{stage}\n" in out
    assert (tmp_path / "params.yaml").read_bytes() == PARAMS.read_bytes()


def test_run_is_dvc_exp_run_with_the_preset_then_the_users_values(tmp_path, monkeypatch):
    shutil.copyfile(PARAMS, tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    calls, real_run = [], subprocess.run

    def fake_run(cmd, *args, **kwargs):  # dvc is recorded, not run (git, for MLflow's tags, is)
        if cmd[0] != "dvc":
            return real_run(cmd, *args, **kwargs)
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(subprocess, "run", fake_run)
    preset_cli.run(cli("run", "h36m64", "-S", "extract_frames.workers=8", "--dvc", "--queue -n h36m"))
    [cmd] = calls
    sets = [cmd[i + 1] for i, a in enumerate(cmd) if a == "-S"]
    assert cmd[:3] == ["dvc", "exp", "run"] and cmd[-3:] == ["--queue", "-n", "h36m"]
    assert sets == presets.set_args("h36m64", ["extract_frames.workers=8"])

"""The shared trainer factory: checkpoint/resume at the same global step, NaN guard, MLflow logging."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import mlflow
import pytest
import torch
import yaml
from torch.utils.data import DataLoader, TensorDataset

from ipoke.config import ParamsError, load_section
from ipoke.train.autoencoder import TrainAEParams
from ipoke.train.cinn import TrainCINNParams
from ipoke.train.encoders import TrainEncodersParams
from ipoke.train.trainer import (
    LAST_CHECKPOINT,
    TrainerParams,
    TrainingDiverged,
    active_profile,
    build_trainer,
    fit,
    reset_stale_checkpoints,
    training_profile,
)

PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"
TRAINING = {"train_ae": TrainAEParams, "train_encoders": TrainEncodersParams, "train_cinn": TrainCINNParams}


def loader(n: int = 64) -> DataLoader:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g)
    return DataLoader(TensorDataset(x, x @ torch.ones(4, 1)), batch_size=4)


class Regression(L.LightningModule):
    """Linear regression; ``nan_at`` makes the loss of that batch index NaN."""

    def __init__(self, nan_at: int | None = None):
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)
        self.nan_at = nan_at
        self.started_at: int | None = None
        self.batches = 0

    def on_train_start(self) -> None:
        self.started_at = self.trainer.global_step

    def training_step(self, batch, batch_idx):
        self.batches += 1
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        if batch_idx == self.nan_at:
            loss = loss * float("nan")
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


class TwoOptimizers(Regression):
    """Manual optimisation with two optimizer steps per batch, like the autoencoder's GAN."""

    def __init__(self):
        super().__init__()
        self.automatic_optimization = False
        self.other = torch.nn.Linear(4, 1)

    def training_step(self, batch, batch_idx):
        self.batches += 1
        x, y = batch
        for opt, net in zip(self.optimizers(), (self.layer, self.other), strict=True):
            loss = torch.nn.functional.mse_loss(net(x), y)
            opt.zero_grad()
            self.manual_backward(loss)
            opt.step()
        return loss.detach()

    def configure_optimizers(self):
        return [
            torch.optim.SGD(self.layer.parameters(), lr=0.05),
            torch.optim.SGD(self.other.parameters(), lr=0.05),
        ]


class Kill(L.Callback):
    """Simulates a run killed after ``at`` global steps (before that step's checkpoint)."""

    def __init__(self, at: int):
        self.at = at

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.at:
            raise RuntimeError("killed")


def params(**kw) -> TrainerParams:
    base = dict(
        max_steps=10,
        accelerator="cpu",
        val_every_n_steps=1000,
        val_batches=1,
        checkpoint_every_n_steps=2,
        log_every_n_steps=1,
    )
    return TrainerParams(**(base | kw))


def test_resume_continues_at_the_same_global_step(tmp_path):
    first = Regression()
    trainer = build_trainer(params(), tmp_path, callbacks=[Kill(at=5)])
    with pytest.raises(RuntimeError, match="killed"):
        fit(trainer, first, loader())
    saved = torch.load(tmp_path / LAST_CHECKPOINT, weights_only=False)
    assert saved["global_step"] == 4  # the last checkpoint before the kill
    assert sorted(p.name for p in tmp_path.iterdir()) == [LAST_CHECKPOINT]  # no torn temporaries

    second = Regression()
    trainer = build_trainer(params(), tmp_path)
    fit(trainer, second, loader())
    assert second.started_at == 4
    assert trainer.global_step == 10
    assert second.batches == 6
    assert torch.load(tmp_path / LAST_CHECKPOINT, weights_only=False)["global_step"] == 10


def test_resume_loads_the_checkpointed_weights(tmp_path):
    trainer = build_trainer(params(max_steps=4), tmp_path)
    trained = Regression()
    fit(trainer, trained, loader())
    trainer = build_trainer(params(max_steps=4), tmp_path)
    resumed = Regression()
    fit(trainer, resumed, loader())  # nothing left to train: only the weights are restored
    assert resumed.batches == 0
    torch.testing.assert_close(resumed.layer.weight, trained.layer.weight)


def test_a_checkpoint_past_a_lowered_max_steps_is_retrained_not_kept(tmp_path):
    fit(build_trainer(params(max_steps=8), tmp_path), Regression(), loader())
    shorter = Regression()
    trainer = build_trainer(params(max_steps=4), tmp_path)
    fit(trainer, shorter, loader())
    assert shorter.started_at == 0 and shorter.batches == 4
    assert torch.load(tmp_path / LAST_CHECKPOINT, weights_only=False)["global_step"] == 4


def test_max_steps_count_batches_with_several_optimizers(tmp_path):
    module = TwoOptimizers()
    trainer = build_trainer(
        params(max_steps=6, checkpoint_every_n_steps=3), tmp_path, optimizer_steps_per_batch=2
    )
    fit(trainer, module, loader())
    assert module.batches == 6
    assert trainer.global_step == 12
    assert torch.load(tmp_path / LAST_CHECKPOINT, weights_only=False)["global_step"] == 12


def test_nan_guard_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    module = Regression(nan_at=3)
    trainer = build_trainer(params(checkpoint_every_n_steps=1), tmp_path)
    with pytest.raises(TrainingDiverged, match="global step 4.*last good checkpoint"):
        fit(trainer, module, loader())
    assert module.batches == 4  # stopped right after the bad batch
    saved = torch.load(tmp_path / LAST_CHECKPOINT, weights_only=False)
    assert saved["global_step"] == 3
    assert all(torch.isfinite(v).all() for v in saved["state_dict"].values())


def test_metrics_go_to_the_stage_run(tmp_path):
    mlflow.set_experiment("trainer-test")
    with mlflow.start_run() as run:
        trainer = build_trainer(params(max_steps=3), tmp_path, run_id=run.info.run_id)
        fit(trainer, Regression(), loader())
    logged = mlflow.get_run(run.info.run_id).data.metrics
    assert "train/loss" in logged


def test_stale_checkpoints_are_dropped_when_settings_or_data_change(tmp_path):
    shards, checkpoints = tmp_path / "shards", tmp_path / "checkpoints"
    shards.mkdir()
    (shards / "clips.parquet").write_bytes(b"index of the clips")
    reset_stale_checkpoints(checkpoints, {"lr": 1}, shards)
    (checkpoints / LAST_CHECKPOINT).write_bytes(b"x")
    reset_stale_checkpoints(checkpoints, {"lr": 1}, shards)
    assert (checkpoints / LAST_CHECKPOINT).exists()
    reset_stale_checkpoints(checkpoints, {"lr": 2}, shards)
    assert not (checkpoints / LAST_CHECKPOINT).exists()
    (checkpoints / LAST_CHECKPOINT).write_bytes(b"x")
    (shards / "clips.parquet").write_bytes(b"index of regenerated clips")
    reset_stale_checkpoints(checkpoints, {"lr": 2}, shards)
    assert not (checkpoints / LAST_CHECKPOINT).exists()


def test_profile_key(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("dataset: x\nprofile: paper\n")
    assert active_profile(path) == "paper"
    path.write_text("dataset: x\nprofile: laptop\n")
    with pytest.raises(ParamsError, match="profile must be one of demo, paper"):
        active_profile(path)


@pytest.mark.parametrize("profile", ["demo", "paper"])
def test_every_training_stage_takes_pokes_from_the_shared_loader_and_batching_from_its_own(tmp_path, profile):
    params = yaml.safe_load(PARAMS.read_text())
    params["profile"] = profile
    params["loader"]["seed"] = 7
    params["loader"]["pokes"] |= {"max_pokes": 3, "patch_size": 3}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    for name, schema in TRAINING.items():
        loader = training_profile(load_section(name, schema, path), path).loader
        assert (loader.seed, loader.pokes.max_pokes, loader.pokes.patch_size) == (7, 3, 3), name
        own = params[name][profile]["loader"]
        assert (loader.batch_size, loader.workers, loader.shuffle_buffer) == (
            own["batch_size"],
            own["workers"],
            own["shuffle_buffer"],
        ), name


@pytest.mark.parametrize("name", list(TRAINING))
def test_a_stage_loader_with_poke_settings_is_refused(tmp_path, name):
    params = yaml.safe_load(PARAMS.read_text())
    params[name]["paper"]["loader"]["pokes"] = {"max_pokes": 1}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    with pytest.raises(ParamsError, match=r"paper\.loader: pokes belong in the shared loader section"):
        load_section(name, TRAINING[name], path)

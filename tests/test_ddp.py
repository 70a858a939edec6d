"""Data-parallel training: Lightning DDP with two CPU processes (gloo) keeps the replicas identical and trains
as one process does at the same total batch, for the cINN (data-dependent ActNorm initialisation) and the
autoencoder (manual optimisation, two optimisers). The runs are in ``tests/ddp_train.py``; the ActNorm
reduction alone is tested in ``test_cinn_layers.py``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from ddp_train import MODELS, ORDER, build, train, trainable

HARNESS = Path(__file__).with_name("ddp_train.py")
STEPS, BATCH = 3, 2  # per process; the single process runs at 2 * BATCH


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ddp")
    cmd = [sys.executable, str(HARNESS), str(out), "--batch", str(BATCH), "--steps", str(STEPS)]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    return out


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
def test_ddp_replicas_stay_identical_and_train_as_one_process(ddp_run, tmp_path, model):
    ranks = [torch.load(ddp_run / f"{model}-rank{r}.pt") for r in (0, 1)]
    single = train(model, tmp_path, devices=1, batch=2 * BATCH, steps=STEPS)
    # the distributed sampler dealt every other clip of one shuffled order to each rank
    seen = STEPS * BATCH
    assert [r["indices"] for r in ranks] == [ORDER[0::2][:seen], ORDER[1::2][:seen]]
    assert single["indices"] == ORDER[: 2 * seen]
    assert ranks[0]["global_step"] == ranks[1]["global_step"] == single["global_step"] > 0

    initial = trainable(build(model))
    for key, value in ranks[0]["params"].items():
        assert torch.equal(value, ranks[1]["params"][key]), f"{key} differs between the ranks"
    moved = max(float((single["params"][k] - initial[k]).abs().max()) for k in initial)
    assert moved > 1e-4  # the steps changed the weights: equal weights are no accident of no training
    # The posterior's log-variance (init -30: std 3e-7) learns only from the reparameterisation noise, which
    # each process draws for its own clips; Adam turns those tiny gradients into full-size steps of random
    # sign. Every other weight must match the single process.
    for key, value in ranks[0]["params"].items():
        if "to_logvar" not in key:
            torch.testing.assert_close(value, single["params"][key], rtol=0, atol=1e-6, msg=key)

    # one checkpoint, written by rank 0, holding rank 0's weights
    state = torch.load(ddp_run / model / "last.ckpt", weights_only=False)["state_dict"]
    for key, value in ranks[0]["params"].items():
        torch.testing.assert_close(state[key].double(), value, rtol=0, atol=0, msg=key)

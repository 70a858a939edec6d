"""Every preset builds every training stage's model as params.yaml gives it and takes two training steps.

The models, losses (VGG16 perceptual terms, discriminators) and optimisers are the preset's own; only the
data (two tiny clips at the preset's frame size), the batch (1) and the length (2 steps, CPU) are the test's.
Presets that share a stage's settings (the encoders of pp128 and h36m128, say) train that stage once.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml
from tiny_clips import Clips
from torch.utils.data import DataLoader

from ipoke import presets
from ipoke.config import load_section
from ipoke.train.autoencoder import AutoencoderModule, TrainAEParams
from ipoke.train.cinn import CINNModule, TrainCINNParams
from ipoke.train.encoders import EncoderPretraining, TrainEncodersParams
from ipoke.train.trainer import build_trainer, fit, training_profile

pytestmark = pytest.mark.slow
PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"
STEPS = 2
SMOKE = {
    "loader": {"batch_size": 1, "workers": 0, "shuffle_buffer": 0},
    "trainer": {
        "max_steps": STEPS,
        "accelerator": "cpu",
        "devices": 1,
        "strategy": "auto",
        "precision": "32-true",
        "val_every_n_steps": 100,
        "val_batches": 1,
        "checkpoint_every_n_steps": STEPS,
    },
}
_trained: dict[str, object] = {}  # stage settings -> the module trained with them


def smoke_profile(name: str, stage: str, schema, tmp_path: Path):
    """The preset's profile of ``stage`` with the shared loader merged in, at batch 1 for 2 CPU steps."""
    params = presets.resolve(presets.set_args(name), PARAMS)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    profile = training_profile(load_section(stage, schema, path), path)
    return profile.model_copy(
        update={
            "loader": profile.loader.model_copy(update=SMOKE["loader"]),
            "trainer": profile.trainer.model_copy(update=SMOKE["trainer"]),
        }
    )


def trained(module, size: int, tmp_path: Path, steps_per_batch: int = 1):
    """``module`` after two steps on clips of ``size`` px, or the module already trained with its settings."""
    key = f"{type(module).__name__} {size} px {json.dumps(module.hparams, sort_keys=True, default=str)}"
    if key not in _trained:
        checkpoints = tmp_path / type(module).__name__
        trainer = build_trainer(module.cfg.trainer, checkpoints, optimizer_steps_per_batch=steps_per_batch)
        fit(trainer, module, DataLoader(Clips(2, size), batch_size=1))  # a non-finite loss raises
        assert trainer.global_step == STEPS * steps_per_batch
        _trained[key] = module
    return _trained[key]


@pytest.mark.parametrize("name", presets.preset_names())
def test_preset_builds_and_steps_every_model(name, tmp_path):
    size, d = presets.PRESETS[name][1], presets.overrides(name)[presets.LATENT_KEYS[0]]

    ae_profile = smoke_profile(name, "train_ae", TrainAEParams, tmp_path)
    module = AutoencoderModule(ae_profile.model_dump(mode="json"))
    ae = trained(module, size, tmp_path, module.optimizer_steps_per_batch).ae
    assert (ae.cfg.resolution, ae.cfg.z_dim) == (size, d)

    encoders_profile = smoke_profile(name, "train_encoders", TrainEncodersParams, tmp_path)
    encoders = trained(EncoderPretraining(encoders_profile.model_dump(mode="json")), size, tmp_path).encoders
    assert encoders.image_encoder.resolution == size

    cinn_profile = smoke_profile(name, "train_cinn", TrainCINNParams, tmp_path)
    cinn = CINNModule(cinn_profile.model_dump(mode="json"), ae, encoders.freeze(), encoders_profile.model)
    cinn = trained(cinn, size, tmp_path)
    assert cinn.cinn.latent_shape == (d, 8, 8)
    assert all(math.isfinite(float(p.sum())) for p in cinn.cinn.parameters())

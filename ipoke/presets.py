"""The paper's experiments as named presets: one per column of its Tables 1-3.

A preset is a set of ``params.yaml`` keys with values, written as DVC's ``-S`` overrides: ``profile: paper``
(the architecture and training settings of appendix E, the same for every column) plus what one column
changes, the dataset, the frame size, the depth d of the latent and the autoencoder's batch, and the flow
the authors trained on (FlowNet2 at 256 px, one direct start->end estimate per clip).

``ipoke preset run pp128`` is ``dvc exp run -S profile=paper -S dataset=plants ...``: DVC writes the values
into params.yaml, records them with the experiment and reruns what they change. ``-S`` given after the
preset's own win, so any experiment can start from a column of the paper. Every preset sets the same keys,
so one preset applied after another leaves nothing of the first behind.

What a column fixes, from the paper: Table 1 compares at 128 px, Tables 2 and 3 at 64 px (section 4.3);
d is 64 for PokingPlants and Human3.6M, 32 for iPER and TaiChi, and the autoencoder trains at batch 16 on
64 px and 20 on 128 px (appendix E.1); the frame step per dataset (Human3.6M at 6.25 Hz, TaiChi every other
frame) is already keyed by dataset in ``extract_frames.step``.

A stage that adds a model at the frame size or on the latent (a baseline, say) puts its keys into
``RESOLUTION_KEYS`` or ``LATENT_KEYS``; every preset then sets them too.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ipoke.config import PARAMS_FILE, ParamsError
from ipoke.evaluation.paper_tables import PAPER_DATASETS, PAPER_TABLES


@dataclass(frozen=True)
class Column:
    """A dataset as the paper's tables have it."""

    dataset: str  # params.yaml ``dataset`` and ``download.source``
    d: int  # channels of the latent z (appendix E.1)


@dataclass(frozen=True)
class Resolution:
    size: int  # frame height = width in pixels
    ae_batch: int  # the autoencoder's batch (appendix E.1)


COLUMNS = {
    "pp": Column("plants", d=64),
    "iper": Column("iper", d=32),
    "taichi": Column("taichi", d=32),
    "h36m": Column("h36m", d=64),
}
RESOLUTIONS = {128: Resolution(128, ae_batch=20), 64: Resolution(64, ae_batch=16)}
PRESETS = {f"{key}{size}": (key, size) for key in COLUMNS for size in RESOLUTIONS}

# The keys that carry a column's frame size and latent depth; a new model stage adds its own here.
RESOLUTION_KEYS = (
    "extract_frames.size",
    "train_ae.paper.model.resolution",
    "train_encoders.paper.resolution",
    "train_ii2v.paper.model.resolution",
)
LATENT_KEYS = ("train_ae.paper.model.z_dim", "train_cinn.paper.model.latent_channels")
# The autoencoder's batch; the cVAE counterpart trains like the autoencoder (appendix F).
AE_BATCH_KEYS = ("train_ae.paper.loader.batch_size", "train_cvae.paper.loader.batch_size")
# The authors' flow: FlowNet2 (ptlflow's FlyingThings3D weights) on frames at 256 px, one estimate per clip.
PAPER_FLOW = {
    "estimate_flow.method": "flownet2",
    "estimate_flow.ckpt": "things",
    "estimate_flow.inference_size": 256,
    "estimate_flow.chain": False,
}


def preset_names() -> list[str]:
    return list(PRESETS)


def _split(name: str) -> tuple[Column, Resolution]:
    if name not in PRESETS:
        raise ParamsError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")
    key, size = PRESETS[name]
    return COLUMNS[key], RESOLUTIONS[size]


def tables(name: str) -> list[str]:
    """Titles of the paper's tables that have this preset's column (dataset at that frame size)."""
    column, resolution = _split(name)
    label = PAPER_DATASETS[column.dataset]
    return [t.title for t in PAPER_TABLES if t.resolution == resolution.size and label in t.datasets]


def overrides(name: str) -> dict[str, Any]:
    """The preset's keys (dotted, as DVC's ``-S`` names them) and values."""
    column, resolution = _split(name)
    return (
        {"profile": "paper", "dataset": column.dataset, "download.source": column.dataset}
        | dict.fromkeys(RESOLUTION_KEYS, resolution.size)
        | dict.fromkeys(LATENT_KEYS, column.d)
        | dict.fromkeys(AE_BATCH_KEYS, resolution.ae_batch)
        | PAPER_FLOW
    )


def hydra_value(value: Any) -> str:
    """``value`` in the override grammar of ``dvc exp run -S`` (Hydra's)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    text = str(value)
    return text if re.fullmatch(r"[A-Za-z_][\w.\-/]*", text) else "'" + text.replace("'", "\\'") + "'"


def set_args(name: str, extra: list[str] = ()) -> list[str]:
    """The ``KEY=VALUE`` overrides of a preset, then ``extra`` (later ones win)."""
    return [f"{k}={hydra_value(v)}" for k, v in overrides(name).items()] + list(extra)


def apply(path: str | Path, sets: list[str]) -> None:
    """Write ``KEY=VALUE`` overrides into the params file at ``path``, exactly as ``dvc exp run -S`` does
    (comments and layout stay)."""
    from dvc.exceptions import InvalidArgumentError
    from dvc.utils.hydra import apply_overrides

    try:
        apply_overrides(path, sets)
    except InvalidArgumentError as err:
        raise ParamsError(f"{path}: cannot set {' '.join(sets)}: {err.__cause__ or err}") from None


def resolve(sets: list[str], params_path: str | Path | None = None) -> dict[str, Any]:
    """params.yaml as it will be once ``sets`` are applied (the file itself is left alone)."""
    source = Path(params_path or PARAMS_FILE)
    if not source.is_file():
        raise ParamsError(f"{source}: params file not found (run from the project root)")
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "params.yaml"
        shutil.copyfile(source, copy)
        apply(copy, sets)
        return yaml.safe_load(copy.read_text())


def _get(params: dict[str, Any], dotted: str) -> Any:
    value: Any = params
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            raise ParamsError(f"params.yaml has no key {dotted}")
        value = value[part]
    return value


def check(params: dict[str, Any]) -> None:
    """Validate every section a preset reaches with its stage's schema, and that the stages agree on the frame
    size and on d (a ``-S`` on one of them alone would stop a later stage hours into a run)."""
    from ipoke.config import parse_section
    from ipoke.data.flow import FlowParams
    from ipoke.data.frames import FramesParams
    from ipoke.data.loader import SharedLoaderParams
    from ipoke.data.sources.params import DownloadParams
    from ipoke.evaluation.protocol import EvaluateParams
    from ipoke.train.autoencoder import TrainAEParams
    from ipoke.train.cinn import TrainCINNParams
    from ipoke.train.cvae import TrainCVAEParams
    from ipoke.train.encoders import TrainEncodersParams
    from ipoke.train.ii2v import TrainII2VParams
    from ipoke.train.trainer import PROFILES

    schemas = {
        "download": DownloadParams,
        "extract_frames": FramesParams,
        "estimate_flow": FlowParams,
        "loader": SharedLoaderParams,
        "train_ae": TrainAEParams,
        "train_encoders": TrainEncodersParams,
        "train_cinn": TrainCINNParams,
        "train_ii2v": TrainII2VParams,
        "train_cvae": TrainCVAEParams,
        "evaluate": EvaluateParams,
    }
    for section, schema in schemas.items():
        parse_section(section, params.get(section), schema)
    if params.get("profile") not in PROFILES:
        raise ParamsError(f"profile must be one of {', '.join(PROFILES)}, got {params.get('profile')!r}")
    profile = params["profile"]
    for keys, what in ((RESOLUTION_KEYS, "frame size"), (LATENT_KEYS, "latent depth d")):
        keys = [k.replace(".paper.", f".{profile}.") for k in keys]
        values = {k: _get(params, k) for k in keys}
        if len(set(values.values())) > 1:
            listed = ", ".join(f"{k}={v}" for k, v in values.items())
            raise ParamsError(f"the stages disagree on the {what}: {listed}")


def _schedule(profile: dict[str, Any]) -> dict[str, Any]:
    return {"batch": profile["loader"]["batch_size"], "steps": profile["trainer"]["max_steps"]}


def summary(params: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """What each stage will read, in a few lines per stage (for ``ipoke preset show``)."""
    profile, dataset = params["profile"], params["dataset"]
    frames, flow = params["extract_frames"], params["estimate_flow"]
    stages = ("train_ae", "train_encoders", "train_cinn", "train_ii2v", "train_cvae", "evaluate")
    ae, enc, cinn, ii2v, cvae, ev = (params[s][profile] for s in stages)
    d, size = ae["model"]["z_dim"], ae["model"]["resolution"]
    return {
        "download": {"dataset": dataset, "source": params["download"]["source"]},
        "extract_frames": {
            "frames": f"{frames['size']} px",
            "frame step": frames["step"].get(dataset, frames["default_step"]),
        },
        "estimate_flow": {
            "method": flow["method"],
            "weights": flow["ckpt"],
            "computed at": f"{flow['inference_size']} px" if flow["inference_size"] else "stored size",
            "chained": flow["chain"],
        },
        "train_ae": {
            "frames": f"{size} px",
            "d": d,
            "z": f"{d} x {ae['model']['latent_size']} x {ae['model']['latent_size']}",
            "encoder widths": ae["model"]["enc_channels"],
            "decoder widths": ae["model"]["dec_channels"],
            "loss": f"perceptual {ae['loss']['perceptual']}, adversarial {ae['loss']['adversarial']}",
            **_schedule(ae),
        },
        "train_encoders": {
            "frames": f"{enc['resolution']} px",
            "widths": f"{enc['model']['width']} doubling to {enc['model']['max_width']}",
            "c_x0, c_poke channels": f"{enc['model']['image_channels']}, {enc['model']['poke_channels']}",
            **_schedule(enc),
        },
        "train_cinn": {
            "frames": f"{size} px (the autoencoder's)",
            "d": cinn["model"]["latent_channels"],
            "sub-blocks N_k": cinn["model"]["subblocks"],
            "coupling width": cinn["model"]["coupling_hidden"],
            **_schedule(cinn),
        },
        "train_ii2v": {
            "frames": f"{ii2v['model']['resolution']} px",
            "widths": f"{ii2v['model']['width']} to {ii2v['model']['deep_width']}",
            **_schedule(ii2v),
        },
        "train_cvae": {
            "frames": f"{size} px (the autoencoder's architecture)",
            **_schedule(cvae),
        },
        "evaluate": {
            "frames": f"{size} px (the trained pipeline's)",
            "test clips": ev["n_clips"],
            "samples per clip": ev["n_samples"],
            "pokes per test clip": ev["n_test_pokes"],
            "LPIPS network": ev["lpips_net"],
        },
    }

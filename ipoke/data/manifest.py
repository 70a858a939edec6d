"""The manifest of a raw dataset: one row per source video, stored as ``manifest.parquet``.

Every source (synthetic, folder, real datasets) writes one; every later stage reads only this table
plus the files it points to. ``path`` is relative to the manifest's directory.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ipoke.atomic import atomic_path
from ipoke.errors import IpokeError

MANIFEST_NAME = "manifest.parquet"
SPLITS = ("train", "test")
COLUMNS: dict[str, str] = {
    "video_id": "string",
    "path": "string",
    "object_id": "string",
    "split": "string",
    "fps": "float64",
    "n_frames": "int64",
    "width": "int64",
    "height": "int64",
    "sha256": "string",
}


def validate(df: pd.DataFrame, where: str = "manifest") -> pd.DataFrame:
    """Check columns, types, unique ids and split names; return the table with canonical dtypes."""
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise IpokeError(f"{where}: missing columns {missing}")
    df = df.astype(COLUMNS | {c: df[c].dtype for c in df.columns if c not in COLUMNS})
    dup = df["video_id"][df["video_id"].duplicated()].tolist()
    if dup:
        raise IpokeError(f"{where}: duplicate video_id {dup[:5]}")
    bad = sorted(set(df["split"]) - set(SPLITS))
    if bad:
        raise IpokeError(f"{where}: unknown split values {bad} (allowed: {list(SPLITS)})")
    return df.reset_index(drop=True)


def write(df: pd.DataFrame, directory: str | Path) -> Path:
    target = Path(directory) / MANIFEST_NAME
    df = validate(df, str(target))
    with atomic_path(target) as tmp:
        df.to_parquet(tmp, index=False)
    return target


def read(directory: str | Path) -> pd.DataFrame:
    path = Path(directory) / MANIFEST_NAME
    if not path.is_file():
        raise IpokeError(f"{path}: no manifest; run the download stage first (dvc repro download)")
    return validate(pd.read_parquet(path), str(path))


def video_path(directory: str | Path, row: pd.Series) -> Path:
    return Path(directory) / str(row["path"])

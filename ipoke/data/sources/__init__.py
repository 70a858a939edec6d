"""Sources of raw videos for the ``download`` stage.

Each source is a module with a params model ``Params`` (a :class:`ipoke.config.Section`) and
``build(params, out_dir, *, frame_step) -> SourceResult``: it puts videos under ``out_dir`` and returns
their manifest rows (see :mod:`ipoke.data.manifest`) plus the files it skipped and why. ``frame_step`` is
the dataset's ``extract_frames`` step, which sets how many frames a video needs for one clip.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import ModuleType

import pandas as pd

SOURCES: dict[str, str] = {
    "synthetic": "ipoke.data.sources.synthetic",
    "folder": "ipoke.data.sources.folder",
    "plants": "ipoke.data.sources.datasets",
    "iper": "ipoke.data.sources.datasets",
    "taichi": "ipoke.data.sources.datasets",
    "h36m": "ipoke.data.sources.datasets",
}


@dataclass
class Skipped:
    path: str
    reason: str


@dataclass
class SourceResult:
    manifest: pd.DataFrame
    skipped: list[Skipped] = field(default_factory=list)


def load(name: str) -> ModuleType:
    if name not in SOURCES:
        raise KeyError(name)
    return importlib.import_module(SOURCES[name])

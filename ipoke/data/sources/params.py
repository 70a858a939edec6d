"""Params of the ``download`` stage: which source, and each source's own section."""

from __future__ import annotations

from typing import Literal

from ipoke.config import Section
from ipoke.data.sources import datasets, folder, synthetic


class DownloadParams(Section):
    source: Literal["synthetic", "folder", "plants", "iper", "taichi", "h36m"] = "synthetic"
    synthetic: synthetic.Params = synthetic.Params()
    folder: folder.Params = folder.Params()
    remote: datasets.Params = datasets.Params()

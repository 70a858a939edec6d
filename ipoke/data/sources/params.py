"""Params of the ``download`` stage: which source, and each source's own section."""

from __future__ import annotations

from typing import Literal

from ipoke.config import Section
from ipoke.data.sources import datasets as remote_source
from ipoke.data.sources import folder as folder_source
from ipoke.data.sources import synthetic as synthetic_source

# The modules are aliased: pydantic resolves the annotations in the class namespace, where a field
# named like its module would shadow it.


class DownloadParams(Section):
    source: Literal["synthetic", "folder", "plants", "iper", "taichi", "h36m"] = "synthetic"
    synthetic: synthetic_source.Params = synthetic_source.Params()
    folder: folder_source.Params = folder_source.Params()
    remote: remote_source.Params = remote_source.Params()

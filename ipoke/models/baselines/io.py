"""A trained baseline on disk: ``<name>.pt`` (state dict) and ``config.json`` (its config section)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch
from torch import nn

from ipoke.atomic import atomic_path, write_text
from ipoke.config import Section
from ipoke.errors import IpokeError

CONFIG_FILE = "config.json"
C = TypeVar("C", bound=Section)


def save_model(model: nn.Module, config: Section, directory: str | Path, name: str) -> None:
    """Write ``<name>.pt`` and ``config.json`` into ``directory``, each atomically."""
    directory = Path(directory)
    with atomic_path(directory / f"{name}.pt") as tmp:
        torch.save(model.state_dict(), tmp)
    write_text(directory / CONFIG_FILE, config.model_dump_json(indent=2) + "\n")


def load_model(
    directory: str | Path, name: str, config_type: type[C], build: Callable[[C], nn.Module], stage: str
) -> nn.Module:
    """The model ``build(config)`` with the weights of ``directory`` (in eval mode); ``stage`` trains it."""
    directory = Path(directory)
    weights, config = directory / f"{name}.pt", directory / CONFIG_FILE
    for path in (weights, config):
        if not path.is_file():
            raise IpokeError(f"{path}: trained {name} not found (run the {stage} stage first)")
    try:
        model = build(config_type.model_validate_json(config.read_text()))
    except ValueError as err:
        raise IpokeError(f"{config}: not a valid {name} config: {err}") from err
    try:
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    except (RuntimeError, OSError) as err:
        raise IpokeError(f"{weights}: does not match {config}: {err}") from err
    return model.eval()

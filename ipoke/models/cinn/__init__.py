"""The conditional invertible network of iPOKE: masked-convolution flows mapping z to r given (x0, c)."""

from ipoke.models.cinn.config import AUTHORS_REFERENCE, PROFILES, CINNConfig
from ipoke.models.cinn.network import CINN, bits_per_dim, objective

__all__ = ["AUTHORS_REFERENCE", "CINN", "CINNConfig", "PROFILES", "bits_per_dim", "objective"]

"""LPIPS (Zhang et al. 2018, AlexNet backbone, v0.1 linear heads) between frames in [-1, 1].

The ``lpips`` package ships its linear-layer weights, but its AlexNet backbone is torchvision's ImageNet
checkpoint from the torch hub cache, which ``lpips.LPIPS(pnet_rand=False)`` would download when missing.
:func:`load_lpips` never downloads: it builds the network with an empty backbone, fills it from the cached
checkpoint and returns :class:`MetricUnavailable` when that file is absent.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from pathlib import Path

import torch

from ipoke.errors import IpokeError
from ipoke.metrics.unavailable import MetricUnavailable
from ipoke.metrics.videos import broadcast_frame_pairs

ALEXNET_URL = "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"
_HASH_IN_NAME = re.compile(r"-([a-f0-9]+)\.")


def alexnet_checkpoint_path() -> Path:
    """Where torchvision keeps the ImageNet AlexNet weights (``$TORCH_HOME/hub/checkpoints/...``)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / ALEXNET_URL.rsplit("/", 1)[-1]


class Lpips:
    """A loaded LPIPS network; smaller is more similar."""

    def __init__(self, model: torch.nn.Module, device: str | torch.device = "cpu", batch_size: int = 64):
        self.model = model.eval().requires_grad_(False).to(device)
        self.device = torch.device(device)
        self.batch_size = batch_size

    @torch.no_grad()
    def frames(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """LPIPS of each frame pair; ``(..., 3, H, W)`` inputs in [-1, 1] broadcast against each other."""
        flat_a, flat_b, lead = broadcast_frame_pairs(a, b)
        scores = []
        for start in range(0, flat_a.shape[0], self.batch_size):
            batch_a = flat_a[start : start + self.batch_size].to(self.device).float()
            batch_b = flat_b[start : start + self.batch_size].to(self.device).float()
            scores.append(self.model(batch_a, batch_b).flatten().cpu())
        return torch.cat(scores).reshape(lead)

    def videos(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Per-sequence LPIPS: the mean over the frame axis of ``(..., T, 3, H, W)`` videos."""
        if a.ndim < 4 or b.ndim < 4:
            raise ValueError(f"expected videos (..., T, 3, H, W), got {tuple(a.shape)} and {tuple(b.shape)}")
        return self.frames(a, b).mean(dim=-1)


def _check_hash(path: Path) -> None:
    """The torch hub convention: the name carries a prefix of the file's SHA-256."""
    match = _HASH_IN_NAME.search(path.name)
    if match is None:
        return
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if not digest.startswith(match.group(1)):
        raise IpokeError(
            f"{path}: SHA-256 {digest[:12]}... does not match the {match.group(1)} in its name; "
            f"the file is corrupt or not the torchvision AlexNet: download it again from {ALEXNET_URL}"
        )


def _unavailable(path: Path) -> MetricUnavailable:
    return MetricUnavailable(
        metric="lpips",
        reason=f"ImageNet AlexNet weights not found at {path}",
        how_to_fix=(
            f"Download {ALEXNET_URL} to {path} (TORCH_HOME selects the cache folder), e.g. by running "
            "`python -c \"import torchvision; torchvision.models.alexnet(weights='IMAGENET1K_V1')\"` "
            "on a machine with internet access and copying the torch hub checkpoints folder over."
        ),
    )


def load_lpips(
    device: str | torch.device = "cpu",
    checkpoint: str | Path | None = None,
    check_hash: bool = True,
    batch_size: int = 64,
) -> Lpips | MetricUnavailable:
    """LPIPS-Alex with the backbone read from ``checkpoint`` (default: the torch hub cache); no downloads."""
    path = Path(checkpoint) if checkpoint is not None else alexnet_checkpoint_path()
    if not path.is_file():
        return _unavailable(path)
    if check_hash:
        _check_hash(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise IpokeError(
            f"{path}: cannot read AlexNet weights ({err}); download {ALEXNET_URL} again"
        ) from err

    import lpips

    with warnings.catch_warnings():  # lpips passes torchvision's deprecated ``pretrained=`` argument
        warnings.simplefilter("ignore", UserWarning)
        model = lpips.LPIPS(net="alex", version="0.1", pretrained=True, pnet_rand=True, verbose=False)
    # lpips splits ``alexnet.features`` into slices but keeps each layer's index: slice2.3.weight is
    # features.3.weight of the torchvision checkpoint.
    backbone = {}
    for name in model.net.state_dict():
        key = "features." + name.split(".", 1)[1]
        if not isinstance(state, dict) or key not in state:
            raise IpokeError(f"{path}: not torchvision AlexNet weights (no '{key}'); download {ALEXNET_URL}")
        backbone[name] = state[key]
    try:
        model.net.load_state_dict(backbone)
    except RuntimeError as err:
        raise IpokeError(f"{path}: AlexNet weights do not fit the LPIPS backbone: {err}") from err
    return Lpips(model, device=device, batch_size=batch_size)

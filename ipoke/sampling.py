"""The public sampling API: a trained iPOKE pipeline, loaded from its directory.

A pipeline directory (written at the end of the ``train_cinn`` stage, ``models/<dataset>/pipeline/``)::

    config.json      PipelineConfig: dataset, profile, resolution, frames, poke format, cINN config
    ae/              the video autoencoder (``ipoke.models.autoencoder.save_autoencoder``)
    encoders/        the conditioning encoders (``save_encoders``; also the ``train_encoders`` output)
    cinn.pt          the cINN's state dict
    test_frames/     a few test-split start frames (PNG) for the web app

Sampling (paper eq. 4): ``z = tau(r | x0, c)`` with ``r ~ N(0, temperature^2 I)``, then the AE decoder renders
the frames from ``z`` and ``x0``. Kinematics transfer (paper 4.2): ``residual`` inverts a real video given its
poke (``r = tau^-1(z | x0, c)``, z the AE posterior mean) and ``render`` animates a new start frame with it.

Poke maps are the loader's: each poke ``(x, y, dx, dy)`` in model pixels written as a ``patch_size`` square of
its displacement (:func:`ipoke.data.pokes.draw_patches`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from pydantic import Field

from ipoke.atomic import atomic_path, write_text
from ipoke.config import Section
from ipoke.data.pokes import draw_patches
from ipoke.errors import IpokeError
from ipoke.image_crop import check_pokes
from ipoke.metrics.videos import float_to_uint8, uint8_to_float
from ipoke.models.autoencoder import VideoAutoencoder, load_autoencoder, save_autoencoder
from ipoke.models.cinn import CINN, CINNConfig
from ipoke.models.encoders import Conditioner, EncoderConfig, build_conditioner

CONFIG_FILE = "config.json"
CINN_FILE = "cinn.pt"
ENCODERS_FILE = "encoders.pt"
TEST_FRAMES_DIR = "test_frames"
FORMAT_VERSION = 1


class PipelineConfig(Section):
    format: int = FORMAT_VERSION
    dataset: str
    profile: str
    resolution: int = Field(gt=0, description="model frame size (square), px")
    n_frames: int = Field(gt=1, description="frames per video including x0")
    max_pokes: int = Field(ge=1)
    patch_size: int = Field(ge=1, description="side of each poke's square in the poke map")
    poke_conditioning: bool
    encoders: EncoderConfig
    cinn: CINNConfig


class EncodersFile(Section):
    """``config.json`` of an encoders directory."""

    resolution: int = Field(gt=0)
    model: EncoderConfig


def resolve_device(device: str | torch.device) -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except RuntimeError as err:
        raise IpokeError(f"unknown torch device {device!r}: use auto, cpu, cuda or cuda:N") from err


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        raise IpokeError(f"{path}: {what} not found")
    return path


def _load_state(path: Path, map_location: torch.device | str) -> dict:
    try:
        return torch.load(_require(path, "weights file"), map_location=map_location, weights_only=True)
    except (RuntimeError, OSError, EOFError) as err:
        raise IpokeError(f"{path}: not a readable weights file: {err}") from err


def _read_config(path: Path, model: type[Section]):
    try:
        return model.model_validate_json(_require(path, "config").read_text())
    except ValueError as err:
        raise IpokeError(f"{path}: invalid config: {err}") from err


# ------------------------------------------------------------------------------------------ encoders


def save_encoders(conditioner: Conditioner, config: EncoderConfig, resolution: int, directory: Path) -> None:
    """Write ``encoders.pt`` (one state dict per encoder) and ``config.json`` into ``directory``."""
    directory = Path(directory)
    states = {"image_encoder": conditioner.image_encoder.state_dict()}
    if conditioner.poke_encoder is not None:
        states["poke_encoder"] = conditioner.poke_encoder.state_dict()
    with atomic_path(directory / ENCODERS_FILE) as tmp:
        torch.save(states, tmp)
    record = EncodersFile(resolution=resolution, model=config)
    write_text(directory / CONFIG_FILE, record.model_dump_json(indent=2) + "\n")


def load_encoders(
    directory: str | Path, poke_conditioning: bool = True, map_location: torch.device | str = "cpu"
) -> tuple[Conditioner, EncodersFile]:
    """The frozen conditioner from an encoders directory (``train_encoders`` output or a pipeline's)."""
    directory = Path(directory)
    record = _read_config(directory / CONFIG_FILE, EncodersFile)
    conditioner = build_conditioner(record.model, record.resolution, poke_conditioning)
    states = _load_state(directory / ENCODERS_FILE, map_location)
    parts = {"image_encoder": conditioner.image_encoder, "poke_encoder": conditioner.poke_encoder}
    for name, module in parts.items():
        if module is None:
            continue
        if name not in states:
            raise IpokeError(
                f"{directory / ENCODERS_FILE}: has no {name} (trained without poke conditioning?); "
                "retrain the encoders"
            )
        try:
            module.load_state_dict(states[name])
        except RuntimeError as err:
            raise IpokeError(
                f"{directory / ENCODERS_FILE}: {name} does not match config.json: {err}"
            ) from err
    return conditioner.freeze(), record


# ------------------------------------------------------------------------------------------- pipeline


def model_view(image: np.ndarray, size: int) -> tuple[np.ndarray, float, tuple[int, int]]:
    """Centre-crop ``image`` to a square and resize it to ``size``; returns it, the scale and the crop's
    top-left corner ``(left, top)`` in the image."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise IpokeError(f"image must be uint8 RGB (H, W, 3), got {image.dtype} {image.shape}")
    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = image[top : top + side, left : left + side]
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    resized = cv2.resize(np.ascontiguousarray(square), (size, size), interpolation=interpolation)
    return resized, size / side, (left, top)


class PokePipeline:
    """A trained iPOKE pipeline: AE decoder + frozen conditioning encoders + cINN, loaded from its dir."""

    def __init__(
        self,
        ae: VideoAutoencoder,
        conditioner: Conditioner,
        cinn: CINN,
        config: PipelineConfig,
        device: str | torch.device = "cpu",
        frames_dir: Path | None = None,
    ):
        self.device = resolve_device(device)
        self.config = config
        self.ae = ae.to(self.device).eval()
        self.conditioner = conditioner.to(self.device).freeze()
        self.cinn = cinn.to(self.device).eval()
        self.size = config.resolution
        self.n_frames = config.n_frames
        self.max_pokes = config.max_pokes
        self.poke_conditioned = config.poke_conditioning
        self._frames_dir = frames_dir

    @classmethod
    def load(cls, directory: str | Path, device: str = "auto") -> PokePipeline:
        directory = Path(directory)
        if not directory.is_dir():
            raise IpokeError(f"{directory}: no trained pipeline here (run the train_cinn stage first)")
        config = _read_config(directory / CONFIG_FILE, PipelineConfig)
        ae = load_autoencoder(_require(directory / "ae", "autoencoder directory"))
        conditioner, encoders = load_encoders(directory / "encoders", config.poke_conditioning)
        cinn = CINN(config.cinn, conditioner.out_channels)
        try:
            cinn.load_state_dict(_load_state(directory / CINN_FILE, "cpu"))
        except RuntimeError as err:
            raise IpokeError(
                f"{directory / CINN_FILE}: does not match {directory / CONFIG_FILE}: {err}"
            ) from err
        sizes = {"autoencoder": ae.cfg.resolution, "encoders": encoders.resolution}
        if set(sizes.values()) != {config.resolution} or ae.cfg.n_frames + 1 != config.n_frames:
            raise IpokeError(
                f"{directory}: parts disagree with config.json ({config.resolution} px, {config.n_frames} "
                f"frames): resolutions {sizes}, autoencoder frames {ae.cfg.n_frames} + x0"
            )
        return cls(ae, conditioner, cinn, config, device, directory / TEST_FRAMES_DIR)

    def save(self, directory: str | Path, test_frames: Sequence[tuple[str, np.ndarray]] = ()) -> None:
        """Write the pipeline directory atomically (it replaces ``directory`` only once complete)."""
        with atomic_path(directory, directory=True) as tmp:
            save_autoencoder(self.ae, tmp / "ae")
            save_encoders(self.conditioner, self.config.encoders, self.size, tmp / "encoders")
            torch.save(self.cinn.state_dict(), tmp / CINN_FILE)
            (tmp / TEST_FRAMES_DIR).mkdir()
            for name, pixels in test_frames:
                cv2.imwrite(
                    str(tmp / TEST_FRAMES_DIR / f"{name}.png"), cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
                )
            (tmp / CONFIG_FILE).write_text(self.config.model_dump_json(indent=2) + "\n")

    # -------------------------------------------------------------------------------- tensors (evaluation)

    def _inputs(self, x0: torch.Tensor, poke: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        s = self.size
        if x0.ndim != 4 or tuple(x0.shape[1:]) != (3, s, s):
            raise ValueError(f"x0 must be (B, 3, {s}, {s}) in [-1, 1], got {tuple(x0.shape)}")
        if tuple(poke.shape) != (x0.shape[0], 2, s, s):
            raise ValueError(f"poke map must be ({x0.shape[0]}, 2, {s}, {s}), got {tuple(poke.shape)}")
        x0 = x0.to(self.device, torch.float32)
        return x0, poke.to(self.device, torch.float32) if self.poke_conditioned else None

    def _decode(self, z: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        """Latents (N, d, h, w) and start frames (N, 3, S, S) -> videos (N, n_frames, 3, S, S), x0 first."""
        return torch.cat([x0[:, None], self.ae.decode(z, x0)], dim=1)

    @torch.inference_mode()
    def sample_batch(self, x0, poke, n, seed, temperature=1.0) -> torch.Tensor:
        """``n`` videos per start frame: (B, n, n_frames, 3, S, S) in [-1, 1]; the same seed gives the same
        videos."""
        x0, poke = self._inputs(x0, poke)
        cond = self.conditioner(x0, poke)
        z = self.cinn.sample(cond, n, seed=seed, temperature=temperature)
        videos = self._decode(z.flatten(0, 1), x0.repeat_interleave(n, dim=0))
        return videos.unflatten(0, (x0.shape[0], n))

    @torch.inference_mode()
    def reconstruct(self, video: torch.Tensor) -> torch.Tensor:
        """The autoencoder's reconstruction (B, n_frames, 3, S, S), x0 first, of real videos of that shape.

        Samples are decoded by the same decoder: this shows about how faithful they can be.
        """
        video = video.to(self.device, torch.float32)
        return self._decode(self.ae.encode(video), video[:, 0])

    @torch.inference_mode()
    def residual(self, video: torch.Tensor, poke: torch.Tensor) -> torch.Tensor:
        """Residual kinematics r (B, d, h, w) of real videos (B, n_frames, 3, S, S) given their poke maps."""
        x0, poke = self._inputs(video[:, 0], poke)
        z = self.ae.encode(video.to(self.device, torch.float32))
        r, _ = self.cinn(z, self.conditioner(x0, poke))
        return r

    @torch.inference_mode()
    def render(self, x0: torch.Tensor, poke: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """Videos (B, n_frames, 3, S, S) of start frames animated by residuals, e.g. another video's."""
        x0, poke = self._inputs(x0, poke)
        z = self.cinn.reverse(residual.to(self.device, torch.float32), self.conditioner(x0, poke))
        return self._decode(z, x0)

    # --------------------------------------------------------------------------- numpy (people and the app)

    def poke_map(self, pokes: Sequence[Sequence[float]]) -> torch.Tensor:
        """(2, S, S) poke map of ``(x, y, dx, dy)`` rows in model pixels."""
        points = np.asarray(pokes, np.float32).reshape(-1, 4)
        if len(points) > self.max_pokes:
            raise IpokeError(f"{len(points)} pokes given; this model takes at most {self.max_pokes}")
        outside = (points[:, :2] < 0).any(1) | (points[:, :2] > self.size - 1).any(1)
        if outside.any():
            raise IpokeError(
                f"poke start(s) {points[outside, :2].tolist()} lie outside the {self.size} px frame"
            )
        return torch.from_numpy(draw_patches(points, (self.size, self.size), self.config.patch_size))

    def model_pokes(self, image: np.ndarray, pokes: Sequence[Sequence[float]]) -> np.ndarray:
        """Pokes in ``image`` pixels -> (K, 4) pokes in model pixels (after the centre crop and resize).

        Pokes outside the centre square are refused with the image's own coordinates (:func:`check_pokes`).
        """
        check_pokes(np.shape(image), pokes)
        _, scale, (left, top) = model_view(image, self.size)
        points = np.asarray(pokes, np.float64).reshape(-1, 4)
        shift = np.array([left, top, 0.0, 0.0])
        return ((points - shift) * scale).astype(np.float32)

    def sample(self, image, pokes, n, seed, temperature=1.0) -> np.ndarray:
        """``n`` videos (n, n_frames, S, S, 3) uint8 for a uint8 RGB image of any size and pokes
        ``(x, y, dx, dy)`` in its pixels (an empty list means no poke)."""
        square, _, _ = model_view(image, self.size)
        poke = self.poke_map(self.model_pokes(image, pokes))
        x0 = uint8_to_float(square)[None]
        videos = self.sample_batch(x0, poke[None], n, seed, temperature)
        return float_to_uint8(videos[0])

    def test_frames(self) -> list[tuple[str, np.ndarray]]:
        """Test-split start frames shipped with the pipeline: (name, uint8 RGB)."""
        if self._frames_dir is None or not self._frames_dir.is_dir():
            return []
        frames = []
        for path in sorted(self._frames_dir.glob("*.png")):
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is not None:
                frames.append((path.stem, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
        return frames

"""Figures of an evaluation: control errors (Fig. 8-like), ambiguity curve (Fig. 9), kinematics maps
(Fig. 7) as PNG, and sample grids (GT | samples | no-poke sample, pokes drawn) as looping GIF and MP4.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ipoke.app.encode import display_factor, upscale  # noqa: E402
from ipoke.evaluation.results import CONTROL_METHODS, GridExample, KinematicsExample  # noqa: E402
from ipoke.metrics.ambiguity import AmbiguityPoint  # noqa: E402
from ipoke.viz import draw_pokes, hex_color, poke_color  # noqa: E402

METHOD_COLORS = {"ipoke": "#1f77b4", "ae_recon": "#9467bd", "gt_floor": "#2ca02c", "no_poke": "#d62728"}
GRID_GAP = 4  # px of white between the videos of a grid


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def control_figure(errors: dict[str, dict[str, np.ndarray]]) -> bytes:
    """Per-clip error distributions: one panel per measure (title -> method -> (N,) px), means marked."""
    fig, axes = plt.subplots(1, len(errors), figsize=(4.6 * len(errors), 3.6), squeeze=False)
    for ax, (title, by_method) in zip(axes[0], errors.items(), strict=True):
        values = [np.asarray(by_method[m], np.float64) for m in CONTROL_METHODS]
        values = [v[np.isfinite(v)] for v in values]
        parts = ax.violinplot(values, showextrema=False)
        for body, method in zip(parts["bodies"], CONTROL_METHODS, strict=True):
            body.set_facecolor(METHOD_COLORS[method])
            body.set_alpha(0.5)
        means = [float(v.mean()) if v.size else np.nan for v in values]
        ax.scatter(range(1, len(values) + 1), means, color="black", zorder=3)
        for x, mean in enumerate(means, start=1):
            ax.annotate(f"{mean:.2f}", (x, mean), textcoords="offset points", xytext=(8, 0), va="center")
        ax.set_xticks(range(1, len(values) + 1), ["iPOKE", "AE recon.", "GT floor", "no poke"])
        ax.set_ylabel("px (lower is better)")
        ax.set_title(title)
        ax.set_ylim(bottom=0)
        ax.grid(axis="y", alpha=0.3)
    return _png(fig)


AMBIGUITY_REFERENCE_LABELS = {"ae_recon": "AE reconstruction", "gt_floor": "ground truth (tracker floor)"}


def ambiguity_figure(
    points: list[AmbiguityPoint], error_label: str, reference: dict[str, float] | None = None
) -> bytes:
    """Fig. 9: mean error over samples with its spread (std over samples), and the best sample's error;
    ``reference`` errors (``ae_recon``, ``gt_floor``) as horizontal lines to read the curve against."""
    k = [p.n_pokes for p in points]
    mean = np.array([p.mean_error for p in points])
    std = np.array([p.std_error for p in points])
    fig, ax = plt.subplots(figsize=(5.0, 3.6))
    ax.plot(k, mean, "o-", color="#1f77b4", label="mean error")
    ax.fill_between(k, mean - std, mean + std, color="#1f77b4", alpha=0.2, label="± std over samples")
    ax.plot(k, [p.best_error for p in points], "s--", color="#ff7f0e", label="best sample")
    for key, value in (reference or {}).items():
        label = f"{AMBIGUITY_REFERENCE_LABELS[key]}: {value:.2f}"
        ax.axhline(value, color=METHOD_COLORS[key], linestyle=":", label=label)
    ax.set_xticks(k)
    ax.set_xlabel("number of pokes")
    ax.set_ylabel(error_label)
    ax.set_title(f"Controlling future ambiguity ({points[0].n_samples} samples)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))  # beside the axes, off the lines
    return _png(fig)


def kinematics_figure(example: KinematicsExample) -> bytes:
    """Fig. 7 for one location: the start frame with the location, the variance map and R^2 map."""
    kmap = example.map
    x, y = kmap.location
    fig, axes = plt.subplots(1, 3, figsize=(10.5, 3.5))
    axes[0].imshow(example.image)
    axes[0].set_title(f"x0 and poke location ({x:.0f}, {y:.0f})")
    image = axes[1].imshow(kmap.variance, cmap="magma")
    axes[1].set_title("variance of end shift (px²)")
    fig.colorbar(image, ax=axes[1], fraction=0.046)
    image = axes[2].imshow(kmap.correlation, cmap="viridis", vmin=0, vmax=1)
    axes[2].set_title("share explained by the poke (R²)")
    fig.colorbar(image, ax=axes[2], fraction=0.046)
    for ax in axes:
        ax.plot(
            [x],
            [y],
            marker="o",
            markersize=7,
            markerfacecolor=hex_color(poke_color(0)),
            markeredgecolor="white",
        )
        ax.set_axis_off()
    fig.suptitle(f"{example.n_pokes} random pokes up to {example.max_shift:.1f} px at one location")
    return _png(fig)


def grid_video(example: GridExample, target_px: int = 128) -> np.ndarray:
    """``(T, H, W', 3)`` uint8: GT | sample 1..n | no-poke sample | baselines side by side, pokes drawn on
    each."""
    columns = [example.ground_truth, *example.samples, example.no_poke, *example.baselines.values()]
    factor = display_factor(example.ground_truth.shape[1], target_px)
    scaled = [upscale(c, factor) for c in columns]
    pokes = [tuple(float(v) * factor for v in p) for p in example.pokes]
    drawn = [draw_pokes(c, pokes) for c in scaled]
    t, h = drawn[0].shape[:2]
    gap = np.full((t, h, GRID_GAP, 3), 255, np.uint8)
    pieces = [drawn[0]]
    for column in drawn[1:]:
        pieces += [gap, column]
    return np.concatenate(pieces, axis=2)


def grid_labels(example: GridExample) -> list[str]:
    samples = (f"sample {i + 1}" for i in range(len(example.samples)))
    return ["ground truth", *samples, "no poke", *example.baselines]


def control_panels(
    control: dict[str, np.ndarray], keypoints: dict[str, np.ndarray] | None
) -> dict[str, dict[str, np.ndarray]]:
    """The panels of :func:`control_figure`: control error, and keypoint error where measured."""
    panels = {"control error: poked point to its target": control}
    if keypoints is not None:
        panels["keypoint error of the poked parts (GT)"] = keypoints
    return panels

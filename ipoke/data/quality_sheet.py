"""The data-quality sheet: a handful of clips as one PNG, and its section in the HTML report.

Each row is one clip, left to right: x0 with the loader's pokes of epoch 0 (arrows to their targets; a
background poke is labelled, its target is the still video), x_T, |x_T - x0| (brightened), the start->end
flow (hue = direction, brightness = length up to the clip's largest), and the motion evidence (yellow:
changes over the clip, green: also textured, where foreground pokes may go). Panels are upscaled with
nearest neighbour so single pixels stay visible.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from ipoke.viz import draw_pokes

if TYPE_CHECKING:  # the report imports this module for html_section only: no torch for it
    from ipoke.data.quality import ClipView

COLUMNS = ("x0 + loader's pokes", "x_T", "|x_T - x0| x4", "flow (max {max:.1f} px)", "change / moving")
SCALE = 3
LABEL_H = 18


def flow_image(flow: np.ndarray) -> tuple[np.ndarray, float]:
    """(2, H, W) flow -> uint8 RGB (hue = direction, value = length / max) and the max length."""
    mag, ang = cv2.cartToPolar(np.ascontiguousarray(flow[0]), np.ascontiguousarray(flow[1]))
    top = float(mag.max())
    hsv = np.zeros((*mag.shape, 3), np.uint8)
    hsv[..., 0] = (ang * 90 / np.pi).astype(np.uint8)
    hsv[..., 1] = 255
    hsv[..., 2] = np.clip(mag / top * 255, 0, 255).astype(np.uint8) if top > 0 else 0
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB), top


def evidence_image(view: ClipView) -> np.ndarray:
    base = (view.frames[0].astype(np.float32) * 0.35).astype(np.uint8)
    base[view.evidence.changing] = (230, 200, 40)
    base[view.evidence.moving] = (60, 210, 90)
    return base


def _label(panel: np.ndarray, text: str) -> np.ndarray:
    out = np.full((panel.shape[0] + LABEL_H, panel.shape[1], 3), 255, np.uint8)
    out[LABEL_H:] = panel
    cv2.putText(out, text, (3, LABEL_H - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (20, 20, 20), 1, cv2.LINE_AA)
    return out


def row(view: ClipView) -> np.ndarray:
    """One clip's panels side by side, each with its caption, and the clip's own caption above."""
    x0, xt = view.frames[0], view.frames[-1]
    up = lambda img: cv2.resize(img, None, fx=SCALE, fy=SCALE, interpolation=cv2.INTER_NEAREST)  # noqa: E731
    points, background = view.pokes[0]
    poked = draw_pokes(up(x0), [tuple(float(v) * SCALE for v in p) for p in points])
    diff = np.clip(np.abs(xt.astype(np.int16) - x0.astype(np.int16)) * 4, 0, 255).astype(np.uint8)
    flow_rgb, top = flow_image(view.flow)
    panels = [poked, up(xt), up(diff), up(flow_rgb), up(evidence_image(view))]
    titles = [c.format(max=top) for c in COLUMNS]
    titles[0] += " (background)" if background else ""
    strip = np.concatenate([_label(p, t) for p, t in zip(panels, titles, strict=True)], axis=1)
    lengths = [float(np.hypot(dx, dy)) for _, _, dx, dy in points]
    caption = (
        f"{view.clip_id} ({view.split}): {view.changing_share:.1%} of pixels change; "
        f"epoch-0 pokes {', '.join(f'{n:.1f}' for n in lengths) or 'none'} px"
    )
    return _label(strip, caption)


def sheet(views: list[ClipView], n: int) -> np.ndarray:
    """Rows for ``n`` clips spread evenly over ``views`` (uint8 RGB)."""
    if not views:
        raise ValueError("no clips to draw")
    picks = np.unique(np.linspace(0, len(views) - 1, min(n, len(views))).round().astype(int))
    rows = [row(views[i]) for i in picks]
    gap = np.full((6, rows[0].shape[1], 3), 255, np.uint8)
    return np.concatenate([x for r in rows for x in (r, gap)][:-1], axis=0)


def html_section(directory: str | Path) -> str:
    """The report's "Data" section from a data_quality output directory (``sheet.png``, ``quality.json``)."""
    directory = Path(directory)
    record = json.loads((directory / "quality.json").read_text())
    m, d = record["metrics"], record["details"]
    pct = lambda v: "n/a" if v is None else f"{v:.0%}"  # noqa: E731
    png = base64.b64encode((directory / "sheet.png").read_bytes()).decode("ascii")
    skipped = ", ".join(f"{html.escape(k)} {n}" for k, n in d["skipped_by_reason"].items()) or "none"
    notes = "".join(f"<li>{html.escape(k)}: {html.escape(v)}</li>" for k, v in d["notes"].items())
    return (
        "<h2>Data</h2>"
        f"<p>Over {m['clips']} clips and the loader's pokes: <b>{pct(m['pokes_on_changing'])}</b> of "
        "foreground pokes sit on pixels that change over the clip (background pokes touching one: "
        f"{pct(m['background_pokes_on_changing'])}); median poke length "
        f"<b>{m['median_poke_px'] if m['median_poke_px'] is None else round(m['median_poke_px'], 2)} px</b>; "
        f"still clips <b>{pct(m['still_clips'])}</b>; still videos {m['still_videos']}; skipped videos: "
        f"{skipped}.</p>"
        + (f'<ul class="note">{notes}</ul>' if notes else "")
        + f'<img class="figure" alt="data-quality sheet" src="data:image/png;base64,{png}">'
        '<p class="note">Columns: x0 with the pokes of epoch 0, x_T, the change |x_T - x0| (x4), the '
        "start-&gt;end flow (hue: direction, brightness: length), where the frames change (yellow) and "
        "also have texture (green: where foreground pokes may go).</p>"
    )

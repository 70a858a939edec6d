"""One self-contained HTML page for an evaluation: tables, figures, looping sample videos, protocol.

Everything is inline (CSS in a ``<style>`` block, PNGs and GIFs as base64 ``data:`` URIs), so the page
opens from disk, from an MLflow artifact view or as an e-mail attachment, and makes no request of its own.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from pydantic import Field

from ipoke.config import Section
from ipoke.data.quality_sheet import html_section
from ipoke.errors import IpokeError
from ipoke.evaluation import tables
from ipoke.evaluation.outputs import read_record
from ipoke.evaluation.results import CONTROL_METHODS
from ipoke.viz import hex_color, poke_color


class ReportParams(Section):
    title: str = "iPOKE evaluation"
    max_grids: int = Field(8, ge=0, description="sample grid videos embedded in the page")


MIME = {".png": "image/png", ".gif": "image/gif"}

STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #1d2430;
       background: #f6f7f9; }
main { max-width: 1360px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 26px; margin: 0 0 4px; } h2 { font-size: 20px; margin: 36px 0 10px; }
.facts { color: #566; margin: 0 0 16px; }
.headline { background: #fff; border-left: 4px solid #1f77b4; padding: 12px 16px; margin: 16px 0; }
.headline strong { font-size: 17px; }
figure { margin: 14px 0 22px; } figcaption { font-weight: 600; margin-bottom: 6px; }
.table { overflow-x: auto; background: #fff; padding: 10px 12px; border-radius: 6px; }
table { border-collapse: collapse; font-size: 12.5px; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid #e2e5ea; padding: 3px 6px; text-align: right; white-space: nowrap; }
thead th { background: #eef1f5; text-align: center; white-space: normal; }
#table-run td:last-child { text-align: left; } tbody th { text-align: left; font-weight: 500; }
tr.this-run { background: #e8f1fb; font-weight: 600; }
td.nc { color: #b25000; font-style: italic; }
.note { color: #667; font-size: 12px; margin: 6px 0 0; white-space: normal; }
.missing { background: #fff6ec; border: 1px solid #f3c98b; border-radius: 6px; padding: 8px 16px; }
.missing li { margin: 6px 0; } code { font-size: 12px; }
img.figure { max-width: 100%; background: #fff; border-radius: 6px; }
.grid { display: table; background: #fff; padding: 10px; border-radius: 6px; margin-bottom: 14px; }
.grid img { image-rendering: pixelated; max-width: 100%; display: block; }
.labels { display: flex; font-size: 12px; color: #445; } .labels span { flex: 1; text-align: center; }
.poke { display: inline-block; width: 10px; height: 10px; border-radius: 50%; margin: 0 3px 0 8px; }
pre { background: #fff; padding: 12px; border-radius: 6px; white-space: pre-wrap; font-size: 12.5px; }
"""


def data_uri(path: Path) -> str:
    if not path.is_file():
        raise IpokeError(f"{path}: listed in the evaluation results but missing; rerun the evaluate stage")
    mime = MIME.get(path.suffix.lower())
    if mime is None:
        raise IpokeError(f"{path}: cannot embed a {path.suffix} file in the report")
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def headline(record: dict[str, Any]) -> str:
    """The control result in two sentences: how much of the no-poke-to-floor gap the samples close, and how
    much of it the autoencoder's own reconstructions leave them."""
    control = record["metrics"]["control_error_px"]
    ipoke, ae, floor, none = (control[m] for m in CONTROL_METHODS)
    gap = none - floor
    closed = (
        f" iPOKE closes {100 * (none - ipoke) / gap:.0f}% of the gap between no poke and the floor; the "
        f"autoencoder's reconstructions of the real clips close {100 * (none - ae) / gap:.0f}%."
        if gap > 0
        else ""
    )
    compared = "; ".join(
        f"{html.escape(s['name'])} {tables.cell(s['control_error_px'])} px"
        + ("" if s["div_mse_e4"] is None else f" (DIV MSE {tables.cell(s['div_mse_e4'])})")
        for s in tables.baselines(record).values()
    )
    return (
        f'<div class="headline"><strong>Control error: iPOKE {ipoke:.2f} px · AE reconstruction {ae:.2f} px '
        f"· GT floor {floor:.2f} px · no poke {none:.2f} px.</strong>{closed} Diversity between samples: "
        f"DIV MSE {tables.cell(record['metrics']['div_mse_e4'])} (x1e4), DIV LPIPS "
        f"{tables.cell(record['metrics']['div_lpips_e4'])} (x1e4)."
        + (f" Baselines on the same clips, control error: {compared}." if compared else "")
        + "</div>"
    )


def _not_computed(record: dict[str, Any]) -> str:
    lines = tables.not_computed_lines(record)
    if not lines:
        return ""
    items = "".join(
        f"<li><strong>{html.escape(metric)}</strong>: {html.escape(reason)}.<br>"
        f"<span>How to get it: {html.escape(fix)}</span></li>"
        for metric, reason, fix in lines
    )
    return (
        '<h2 id="not-computed">Not computed</h2><div class="missing"><p>These metrics need pretrained '
        "weights or ground truth this run did not have. They are reported as not computed (n/c), never as "
        f"a number from an untrained network.</p><ul>{items}</ul></div>"
    )


def _grids(record: dict[str, Any], directory: Path, limit: int) -> str:
    parts = []
    for grid in record.get("grids", [])[:limit]:
        labels = "".join(f"<span>{html.escape(label)}</span>" for label in grid["columns"])
        pokes = "".join(
            f'<span class="poke" style="background:{hex_color(poke_color(i))}"></span>'
            f"({x:.0f}, {y:.0f}) → ({x + dx:.0f}, {y + dy:.0f})"
            for i, (x, y, dx, dy) in enumerate(grid["pokes"])
        )
        parts.append(
            f'<div class="grid"><div class="labels">{labels}</div>'
            f'<img alt="GT and samples of {html.escape(grid["clip_id"])}" '
            f'src="{data_uri(directory / grid["gif"])}">'
            f'<p class="note">{html.escape(grid["clip_id"])}: pokes {pokes}</p></div>'
        )
    if not parts:
        return ""
    return (
        "<h2>Samples</h2><p>Each row loops one test clip: the ground truth, the samples drawn with the poke "
        "fixed, a sample with an empty poke map (same seed), then each baseline's video for the same poke "
        f"(the first sample of a stochastic one). Arrows go from the poked pixel to its target (dot).</p>"
        f"{''.join(parts)}"
    )


def _figure(directory: Path, name: str | None, alt: str) -> str:
    if not name:
        return ""
    return f'<img class="figure" alt="{html.escape(alt)}" src="{data_uri(directory / name)}">'


def build_report(
    directory: str | Path, title: str = "iPOKE evaluation", max_grids: int = 8,
    data_quality: Path | None = None,
) -> str:
    """The HTML page for the evaluation output ``directory`` (see :mod:`ipoke.evaluation.outputs`), with the
    data-quality sheet of ``data_quality`` (see :mod:`ipoke.data.quality_sheet`) when given."""
    directory = Path(directory)
    record = read_record(directory)
    figures = record.get("figures", {})
    facts = (
        f"dataset <b>{html.escape(record['dataset'])}</b> · profile {html.escape(record['profile'])} · "
        f"{record['size']} px, {record['n_frames']} frames · {record['n_clips']} test clips × "
        f"{record['n_samples']} samples · evaluated in {record['seconds']:.0f} s"
        + ("" if record["poke_conditioned"] else " · <b>model ignores pokes</b> (image-to-video variant)")
    )
    kinematics = "".join(
        _figure(directory, k["figure"], f"kinematics map of {k['clip_id']}")
        for k in record.get("kinematics", [])
    )
    ambiguity = record.get("ambiguity", {})
    ambiguity_html = (
        _figure(directory, figures.get("ambiguity"), "ambiguity curve")
        if "points" in ambiguity
        else f'<p class="note">Not computed: {html.escape(ambiguity.get("reason", ""))}</p>'
    )
    body = [
        f'<h1>{html.escape(title)}</h1><p class="facts">{facts}</p>',
        headline(record),
        "<h2>Control</h2>",
        tables.to_html(tables.control_table(record)),
        _figure(directory, figures.get("control"), "control error distributions"),
        "<h2>Tables</h2>",
        *(tables.to_html(t) for t in tables.all_tables(record) if t.key not in ("control",)),
        _not_computed(record),
        _grids(record, directory, max_grids),
        "<h2>Kinematics maps (Fig. 7)</h2>" + kinematics if kinematics else "",
        "<h2>Controlling future ambiguity (Fig. 9)</h2>" + ambiguity_html,
        f"<h2>Protocol</h2><pre>{html.escape(record.get('protocol', ''))}</pre>",
        html_section(data_quality) if data_quality is not None else "",
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>"
        f"<body><main>{''.join(body)}</main></body></html>\n"
    )

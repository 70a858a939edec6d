"""Result tables shaped like the paper's Tables 1-3, this run's row under the published ones, plus the
control table and a list of every number of the run; rendered as Markdown and as HTML.

Tables are built from the evaluation record (``results.json``), so the evaluate and report stages render
the same tables. Cells: a number, ``–`` where the source has no value, ``n/c`` where this run could not
compute the metric (the notes say why and how to get it).
"""

from __future__ import annotations

import html as html_lib
from dataclasses import dataclass, field
from typing import Any

from ipoke.evaluation.paper_tables import PAPER_DATASETS, PAPER_TABLES, Column, PaperTable
from ipoke.evaluation.results import CONTROL_LABELS, CONTROL_METHODS

MISSING = "–"
NOT_COMPUTED = "n/c"
SHORT = {"ipoke": "iPOKE", "ae_recon": "AE reconstruction", "gt_floor": "GT floor", "no_poke": "no poke"}
COMPARED_IN = {"table1": ("hao", "ii2v"), "table3": ("cvae",)}  # the paper table each baseline belongs to


@dataclass
class Row:
    label: str
    cells: list[str]
    this_run: bool = False


@dataclass
class Table:
    key: str
    title: str
    columns: list[str]
    rows: list[Row]
    groups: list[tuple[str, int]] = field(default_factory=list)  # (label, columns spanned); may be empty
    notes: list[str] = field(default_factory=list)
    row_header: str = "method"


def is_not_computed(value: Any) -> bool:
    return isinstance(value, dict) and value.get("status") == "not computed"


def cell(value: Any) -> str:
    if value is None:
        return MISSING
    if is_not_computed(value):
        return NOT_COMPUTED
    value = float(value)
    return f"{value:.2f}" if abs(value) >= 10 else f"{value:.3f}"


def _header(column: Column) -> str:
    return f"{column.label} {'↑' if column.higher_is_better else '↓'}"


def run_label(record: dict, method: str = "iPOKE") -> str:
    return f"this run: {method} ({record['dataset']}, {record['size']} px, {record['n_clips']} clips)"


def baselines(record: dict) -> dict[str, dict]:
    """This run's baseline results by method key (empty for a run without baselines)."""
    return record["metrics"].get("baselines", {})


def comparison_table(paper: PaperTable, record: dict) -> Table:
    """A paper table with this run's row; the run fills its dataset's group (a new group if not in it)."""
    group = PAPER_DATASETS.get(record["dataset"], record["dataset"])
    datasets = list(paper.datasets) + ([] if group in paper.datasets else [group])
    width = len(paper.columns)
    rows = [
        Row(row.method, [cell(v) for d in datasets for v in row.values.get(d, (None,) * width)])
        for row in paper.rows
    ]
    runs = [(run_label(record), record["metrics"])] + [
        (run_label(record, scores["name"]), scores)
        for key, scores in baselines(record).items()
        if key in COMPARED_IN.get(paper.key, ())
    ]
    for label, metrics in runs:
        cells = [cell(metrics.get(c.key)) if d == group else MISSING for d in datasets for c in paper.columns]
        rows.append(Row(label, cells, this_run=True))
    notes = [f"Published rows: {paper.source}."]
    if record["size"] != paper.resolution:
        notes.append(
            f"This run is at {record['size']} px, the paper's table at {paper.resolution} px: "
            "compare with care."
        )
    return Table(
        paper.key,
        paper.title,
        [_header(c) for c in paper.columns] * len(datasets),
        rows,
        groups=[(d, width) for d in datasets],
        notes=notes,
    )


def control_table(record: dict) -> Table:
    """Control error (and keypoint error where GT keypoints exist) of samples vs. floor vs. no poke."""
    metrics = record["metrics"]
    control, keypoints = metrics["control_error_px"], metrics["keypoint_error_px"]
    rows = [
        Row(
            CONTROL_LABELS[m],
            [cell(control[m]), cell(keypoints if is_not_computed(keypoints) else keypoints[m])],
            this_run=m == "ipoke",
        )
        for m in CONTROL_METHODS
    ]
    rows[1:1] = [  # the baselines, after iPOKE
        Row(s["label"], [cell(s["control_error_px"]), cell(s["keypoint_error_px"])], this_run=True)
        for s in baselines(record).values()
    ]
    notes = [
        "Control error: distance between where the poked point is tracked to in the last frame and the "
        "poke's target. The GT floor applies the same tracking to the real clip: what tracker and "
        "flow-based targets get wrong without any model. The AE reconstruction row tracks the real clip "
        "after the autoencoder's encoder and decoder: about the best that samples decoded by that "
        "autoencoder can do, so it shows whether the autoencoder or the cINN limits control. No-poke "
        "sampling uses the same seeds with an empty poke map.",
        "The paper gives Fig. 8's numbers (iPER keypoint MSE) only as a plot, so no published rows.",
    ]
    if "hao" in baselines(record):
        notes.append(
            "Hao et al.'s warping is given the real clip's trajectories, and the poked points' targets as "
            "their ends, so its control error is low by construction."
        )
    return Table(
        "control",
        f"Control accuracy on {record['dataset']} (Fig. 8-style; lower is better)",
        ["control error (px) ↓", "keypoint error, poked parts (px) ↓"],
        rows,
        notes=notes,
    )


def poke_response_table(record: dict) -> Table | None:
    """How much the samples move for a foreground poke and for a background poke (which should leave the
    poked point and the frame still)."""
    response = record["metrics"].get("poke_response")
    if response is None:
        return None
    labels = {
        "foreground": "foreground poke (on the object)",
        "background": "background poke (target: still)",
    }
    if is_not_computed(response):
        rows = [Row(labels[side], [cell(response)] * 2, this_run=True) for side in labels]
    else:
        rows = [
            Row(
                f"{labels[side]}, {response['n_clips'][side]} clips",
                [cell(response[side]["point_motion"]), cell(response[side]["frame_change"])],
                this_run=side == "background",
            )
            for side in labels
        ]
    return Table(
        "poke_response",
        "Background pokes: the poked point and the frame should stay still",
        ["poked point moves (px)", "mean frame change (grey levels)"],
        rows,
        notes=[
            "Poked point: how far it is tracked to move by the last frame of the iPOKE samples. Frame "
            "change: mean absolute difference of the generated frames from x0, over all pixels, 0-255 "
            "scale. A background poke sits on a still pixel, with a displacement drawn from the clip's "
            "moving pixels (paper E.3); the model learned that its video is the still one."
        ],
    )


RUN_ROWS = (
    ("fvd", "FVD ↓"),
    ("lpips", "LPIPS ↓"),
    ("ssim", "SSIM ↑"),
    ("psnr", "PSNR (dB) ↑"),
    ("div_mse_e4", "DIV MSE (x1e4) ↑"),
    ("div_lpips_e4", "DIV LPIPS (x1e4) ↑"),
    ("control_error_px", "control error (px) ↓"),
    ("keypoint_error_px", "keypoint error (px) ↓"),
)  # a baseline's rows in the table of every number


def run_table(record: dict) -> Table:
    """Every number of this run, with what it measures."""
    metrics = record["metrics"]
    rows = [
        Row(
            "FVD ↓",
            [cell(metrics["fvd"]), "I3D features, sample 0 of each clip vs. real clips (x0 + 10 frames)"],
        ),
        Row("LPIPS ↓", [cell(metrics["lpips"]), "to GT frames, mean over frames and samples"]),
        Row("SSIM ↑", [cell(metrics["ssim"]), "to GT frames, mean over frames and samples"]),
        Row("PSNR (dB) ↑", [cell(metrics["psnr"]), "to GT frames, mean over frames and samples"]),
        Row("DIV MSE (x1e4) ↑", [cell(metrics["div_mse_e4"]), "mean pairwise MSE between samples"]),
        Row("DIV LPIPS (x1e4) ↑", [cell(metrics["div_lpips_e4"]), "mean pairwise LPIPS between samples"]),
    ]
    keypoints = metrics["keypoint_error_px"]
    for method in CONTROL_METHODS:
        rows.append(
            Row(
                f"control error, {SHORT[method]} (px) ↓",
                [cell(metrics["control_error_px"][method]), CONTROL_LABELS[method]],
            )
        )
    for method in CONTROL_METHODS:
        value = keypoints if is_not_computed(keypoints) else keypoints[method]
        rows.append(Row(f"keypoint error, {SHORT[method]} (px) ↓", [cell(value), CONTROL_LABELS[method]]))
    for scores in baselines(record).values():
        for metric, label in RUN_ROWS:
            rows.append(Row(f"{label}, {scores['name']}", [cell(scores[metric]), scores["label"]]))
    ambiguity = record.get("ambiguity", {})
    for point in ambiguity.get("points", []):
        rows.append(
            Row(
                f"ambiguity, {point['n_pokes']} poke(s)",
                [
                    cell(point["mean_error"]),
                    f"mean ± std {cell(point['std_error'])} over "
                    f"{point['n_samples']} samples; {ambiguity['error']}",
                ],
            )
        )
    for key, value in ambiguity.get("reference", {}).items():
        what = f"lower reference on the curve's clips: {CONTROL_LABELS[key]}; {ambiguity['error']}"
        rows.append(Row(f"ambiguity, {SHORT[key]} ↓", [cell(value), what]))
    if ambiguity.get("poke_spacing_px") is not None:
        what = "mean distance between the curve's pokes; if only a few px, they overlap and repeat the first"
        rows.append(Row("ambiguity, poke spacing (px)", [cell(ambiguity["poke_spacing_px"]), what]))
    return Table(
        "run",
        f"All metrics of this run ({record['n_clips']} test clips, {record['n_samples']} samples each)",
        ["value", "what"],
        rows,
        row_header="metric",
    )


def all_tables(record: dict) -> list[Table]:
    response = poke_response_table(record)
    return [
        *(comparison_table(t, record) for t in PAPER_TABLES),
        control_table(record),
        *([response] if response is not None else []),
        run_table(record),
    ]


def not_computed_lines(record: dict) -> list[tuple[str, str, str]]:
    """``(metric, reason, how to fix)`` of every metric this run could not compute."""
    return [(r["metric"], r["reason"], r["how_to_fix"]) for r in record.get("not_computed", [])]


def to_markdown(table: Table) -> str:
    columns = table.columns
    if table.groups:
        labels = [g for g, span in table.groups for _ in range(span)]
        columns = [f"{g} {c}" for g, c in zip(labels, columns, strict=True)]
    lines = [
        f"### {table.title}",
        "",
        f"| {table.row_header} | " + " | ".join(columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    for row in table.rows:
        label = f"**{row.label}**" if row.this_run else row.label
        lines.append(f"| {label} | " + " | ".join(row.cells) + " |")
    lines += [""] + [f"_{note}_" for note in table.notes]
    return "\n".join(lines).rstrip() + "\n"


def to_html(table: Table) -> str:
    esc = html_lib.escape
    head = []
    if table.groups:
        groups = "".join(f'<th colspan="{span}">{esc(g)}</th>' for g, span in table.groups)
        head.append(f'<tr><th rowspan="2">{esc(table.row_header)}</th>{groups}</tr>')
        head.append("<tr>" + "".join(f"<th>{esc(c)}</th>" for c in table.columns) + "</tr>")
    else:
        head.append(
            f"<tr><th>{esc(table.row_header)}</th>"
            + "".join(f"<th>{esc(c)}</th>" for c in table.columns)
            + "</tr>"
        )
    body = []
    for row in table.rows:
        css = ' class="this-run"' if row.this_run else ""
        cells = "".join(
            f'<td class="nc" title="not computed: see below">{esc(c)}</td>'
            if c == NOT_COMPUTED
            else f"<td>{esc(c)}</td>"
            for c in row.cells
        )
        body.append(f'<tr{css}><th scope="row">{esc(row.label)}</th>{cells}</tr>')
    notes = "".join(f'<p class="note">{esc(n)}</p>' for n in table.notes)
    return (
        f'<figure class="table" id="table-{esc(table.key)}"><figcaption>{esc(table.title)}</figcaption>'
        f"<table><thead>{''.join(head)}</thead><tbody>{''.join(body)}</tbody></table>{notes}</figure>"
    )


def markdown(record: dict) -> str:
    """All tables, then the metrics that were not computed with their reasons."""
    parts = [to_markdown(t) for t in all_tables(record)]
    missing = not_computed_lines(record)
    if missing:
        lines = ["### Not computed", ""]
        lines += [f"- **{metric}**: {reason}. {fix}" for metric, reason, fix in missing]
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


def html(record: dict) -> str:
    return "\n".join(to_html(t) for t in all_tables(record))

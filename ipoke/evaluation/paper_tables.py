"""Published numbers of the iPOKE paper (ICCV 2021), for the reference rows of the result tables.

Transcribed from ``ipoke-paper-with-appendix.txt`` (section 4.3). Each table keeps the paper's layout:
column groups are datasets, columns are metrics, rows are methods; ``None`` is a cell the paper leaves
empty ("–"). Diversity numbers (DIV MSE, DIV LPIPS) are in the paper's units, multiplied by 1e4.
The control accuracy of Fig. 8 is published only as a plot (no numbers in the text), so it has no table
here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    key: str  # the metric's key in this project's metrics.json
    label: str  # the paper's column header
    higher_is_better: bool


@dataclass(frozen=True)
class PaperRow:
    method: str
    values: dict[str, tuple[float | None, ...]]  # paper dataset -> one value per column


@dataclass(frozen=True)
class PaperTable:
    key: str
    title: str
    source: str  # where in the paper the numbers come from
    resolution: int  # frame size of the paper's evaluation, in pixels
    datasets: tuple[str, ...]
    columns: tuple[Column, ...]
    rows: tuple[PaperRow, ...]


FVD = Column("fvd", "FVD", False)
LPIPS = Column("lpips", "LPIPS", False)
SSIM = Column("ssim", "SSIM", True)
DIV_MSE = Column("div_mse_e4", "DIV MSE (x1e4)", True)
DIV_LPIPS = Column("div_lpips_e4", "DIV LPIPS (x1e4)", True)

PAPER_DATASETS = {"plants": "PP", "iper": "iPER", "taichi": "Tai-Chi", "h36m": "Human3.6m"}
"""This project's dataset names -> the paper's column groups."""

TABLE_1 = PaperTable(
    key="table1",
    title="Table 1: controlled video synthesis (vs. sparsely controlled methods)",
    source="iPOKE paper, Table 1 (section 4.3, 'Controllable Video Synthesis'), 128x128 frames",
    resolution=128,
    datasets=("PP", "iPER", "Tai-Chi", "Human3.6m"),
    columns=(FVD, LPIPS, SSIM),
    rows=(
        PaperRow(
            "Hao et al. [27]",
            {
                "PP": (361.51, 0.16, 0.72),
                "iPER": (235.08, 0.11, 0.88),
                "Tai-Chi": (341.79, 0.12, 0.78),
                "Human3.6m": (259.92, 0.10, 0.93),
            },
        ),
        PaperRow("Hao et al. [27] w/ KP", {"iPER": (141.07, 0.04, 0.93)}),
        PaperRow(
            "II2V [6]",
            {
                "PP": (174.18, 0.10, 0.78),
                "iPER": (220.34, 0.07, 0.89),
                "Tai-Chi": (167.94, 0.12, 0.78),
                "Human3.6m": (129.62, 0.08, 0.91),
            },
        ),
        PaperRow(
            "iPOKE (paper)",
            {
                "PP": (63.06, 0.06, 0.69),
                "iPER": (77.50, 0.06, 0.87),
                "Tai-Chi": (100.69, 0.08, 0.74),
                "Human3.6m": (119.77, 0.06, 0.93),
            },
        ),
    ),
)

TABLE_2 = PaperTable(
    key="table2",
    title="Table 2: stochastic video synthesis (quality and diversity)",
    source="iPOKE paper, Table 2 (section 4.3, 'Stochastic Video Synthesis'), 64x64 frames; "
    "SAVP collapsed to one mode, so the paper gives no diversity for it",
    resolution=64,
    datasets=("PP", "iPER", "Tai-Chi", "Human3.6m"),
    columns=(FVD, DIV_MSE, DIV_LPIPS),
    rows=(
        PaperRow(
            "SAVP [40]",
            {
                "PP": (92.2, None, None),
                "iPER": (92.8, None, None),
                "Tai-Chi": (236.8, None, None),
                "Human3.6m": (131.7, None, None),
            },
        ),
        PaperRow(
            "IVRNN [10]",
            {
                "PP": (128.3, 2.52, 8.23),
                "iPER": (126.0, 37.66, 93.26),
                "Tai-Chi": (150.2, 0.34, 1.65),
                "Human3.6m": (238.6, 46.45, 106.71),
            },
        ),
        PaperRow(
            "SRVP [24]",
            {
                "PP": (171.9, 110.37, 225.77),
                "iPER": (274.2, 53.94, 164.46),
                "Tai-Chi": (268.9, 30.2, 16.00),
                "Human3.6m": (140.1, 93.61, 224.07),
            },
        ),
        PaperRow(
            "iPOKE (paper)",
            {
                "PP": (56.59, 133.37, 275.04),
                "iPER": (81.49, 98.95, 201.58),
                "Tai-Chi": (96.09, 69.96, 126.76),
                "Human3.6m": (111.55, 124.25, 309.06),
            },
        ),
    ),
)

TABLE_3 = PaperTable(
    key="table3",
    title="Table 3: ablation (cVAE counterpart vs. cINN)",
    source="iPOKE paper, Table 3 (section 4.3, 'Ablation Study'), 64x64 frames; its iPOKE row repeats "
    "Table 2, so its diversity numbers are also x1e4",
    resolution=64,
    datasets=("PP", "Human3.6m"),
    columns=(FVD, DIV_MSE, DIV_LPIPS),
    rows=(
        PaperRow("iPOKE cVAE (paper)", {"PP": (70.9, 3.37, 7.59), "Human3.6m": (269.6, 83.17, 210.39)}),
        PaperRow("iPOKE (paper)", {"PP": (56.59, 133.37, 275.04), "Human3.6m": (111.55, 124.25, 309.06)}),
    ),
)

PAPER_TABLES = (TABLE_1, TABLE_2, TABLE_3)

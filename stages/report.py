"""DVC stage ``report``: one self-contained HTML page of the evaluation, plus its tables as Markdown.

Deps: ``outputs/<dataset>/eval/`` and ``outputs/<dataset>/data_quality/`` (the data sheet and its numbers).
Outs: ``reports/<dataset>/`` (``index.html``, ``table.md``). Both are logged to the stage's MLflow run and to
the pipeline's parent run.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ipoke import atomic
from ipoke.evaluation.parent_run import log_to_parent_run
from ipoke.evaluation.report import ReportParams, build_report
from ipoke.stage import main_guard, run_stage


def main() -> None:
    with run_stage("report", ReportParams) as st:
        results, out = Path("outputs") / st.dataset / "eval", Path("reports") / st.dataset
        data_quality = Path("outputs") / st.dataset / "data_quality"
        if not data_quality.is_dir():
            print(f"report: no data-quality sheet at {data_quality} (dvc repro data_quality); left out")
        sheet_dir = data_quality if data_quality.is_dir() else None
        page = build_report(results, st.params.title, st.params.max_grids, sheet_dir)
        with atomic.atomic_path(out, directory=True) as tmp:
            (tmp / "index.html").write_text(page)
            shutil.copyfile(results / "tables.md", tmp / "table.md")
        st.log_artifact(out, "report")
        log_to_parent_run([out / "index.html", out / "table.md"], "report")
        print(f"report: {out / 'index.html'} ({len(page) / 1e6:.1f} MB, self-contained)")


if __name__ == "__main__":
    main_guard(main)

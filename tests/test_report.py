"""The HTML report: self-contained, built from an evaluation directory, rendered in headless Chromium.

The evaluation directory comes from the protocol run with the poke-following test double
(:mod:`test_evaluation`). The rendered page is kept as ``test-artifacts/report.png``.
"""

from __future__ import annotations

import json
import re
import shutil

import pytest
from PIL import Image
from test_app_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, NEEDS_CHROMIUM
from test_evaluation import (
    ShiftDouble,
    make_project,
    parent_run_artifacts,
    run,
    small_profile,
    write_test_shards,
)

from ipoke.errors import IpokeError
from ipoke.evaluation import protocol
from ipoke.evaluation.outputs import write_outputs
from ipoke.evaluation.report import build_report, headline


@pytest.fixture(scope="module")
def eval_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    results = run(ShiftDouble(), write_test_shards(root / "shards"), small_profile(grid_clips=2))
    write_outputs(results, root / "eval", "demo", protocol.__doc__, fps=5.0)
    return root / "eval"


def test_the_headline_says_how_much_of_the_gap_samples_and_autoencoder_close():
    control = {"ipoke": 3.0, "ae_recon": 2.0, "gt_floor": 1.0, "no_poke": 5.0}
    text = headline({"metrics": {"control_error_px": control, "div_mse_e4": 1.5, "div_lpips_e4": 2.5}})
    assert "iPOKE closes 50% of the gap" in text and "real clips close 75%" in text
    assert "AE reconstruction 2.00 px" in text


def test_the_page_embeds_everything_it_shows(eval_dir):
    page = build_report(eval_dir)
    references = re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', page)
    assert len(references) == 5  # control, ambiguity, one kinematics map, two sample grids
    assert all(ref.startswith(("data:image/png;base64,", "data:image/gif;base64,")) for ref in references)
    assert not re.search(r"<link|<script|@import|url\(", page)


def test_the_page_shows_the_data_quality_sheet(eval_dir, tmp_path):
    sheet_dir = tmp_path / "data_quality"
    sheet_dir.mkdir()
    Image.new("RGB", (30, 20), (200, 10, 10)).save(sheet_dir / "sheet.png")
    metrics = {"clips": 7, "pokes_on_changing": 0.93, "background_pokes_on_changing": 0.0,
               "median_poke_px": 2.345, "still_clips": 0.25, "still_videos": 1}
    details = {"skipped_by_reason": {"decode errors": 2}, "notes": {"v1": "source 127x53: upscaled"}}
    (sheet_dir / "quality.json").write_text(json.dumps({"metrics": metrics, "details": details}))
    page = build_report(eval_dir, data_quality=sheet_dir)
    data = page[page.index("<h2>Data</h2>"):]
    assert "<b>93%</b> of foreground pokes" in data and "median poke length <b>2.35 px</b>" in data
    assert "still clips <b>25%</b>" in data and "decode errors 2" in data and "source 127x53" in data
    assert data.count("data:image/png;base64,") == 1


def test_missing_inputs_are_named(eval_dir, tmp_path):
    with pytest.raises(IpokeError, match="results.json: no evaluation results; run the evaluate stage"):
        build_report(tmp_path)
    broken = shutil.copytree(eval_dir, tmp_path / "eval")
    (broken / "grids" / "grid_1.gif").unlink()
    with pytest.raises(IpokeError, match="grid_1.gif: listed in the evaluation results but missing"):
        build_report(broken)


def test_report_stage_writes_page_and_table_and_logs_them_to_the_parent_run(eval_dir, tmp_path, monkeypatch):
    from ipoke.tracking import pipeline_run
    from stages import report as stage

    root = make_project(tmp_path / "project", monkeypatch)
    shutil.copytree(eval_dir, root / "outputs" / "synthetic" / "eval")
    with pipeline_run("synthetic", {}, name="test") as parent:
        stage.main()
    page = (root / "reports" / "synthetic" / "index.html").read_text()
    assert "<title>Test evaluation</title>" in page and page.count("data:image/gif") == 1  # max_grids: 1
    assert (root / "reports" / "synthetic" / "table.md").read_text() == (eval_dir / "tables.md").read_text()
    assert {"report/index.html", "report/table.md"} <= parent_run_artifacts(parent, "report")


@NEEDS_CHROMIUM
@pytest.mark.timeout(180)
def test_the_report_renders_in_chromium_without_requests(eval_dir, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    path = tmp_path / "index.html"
    path.write_text(build_report(eval_dir, title="iPOKE evaluation (test double)"))
    requests: list[str] = []
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("request", lambda request: requests.append(request.url))
            page.on("pageerror", lambda err: errors.append(str(err)))
            page.goto(path.as_uri())
            page.wait_for_function("[...document.images].every(i => i.complete && i.naturalWidth > 0)")
            expect(page.locator("img")).to_have_count(5)
            expect(page.locator("figure.table")).to_have_count(6)  # Tables 1-3, control, poke response, all
            expect(page.locator("tr.this-run")).to_have_count(5)  # Tables 1-3, control, poke response
            expect(page.locator("#table-table1 thead")).to_contain_text("synthetic")
            expect(page.locator("#table-table1 tbody")).to_contain_text("iPOKE (paper)")
            expect(page.locator("#table-table1 tr.this-run td.nc")).to_have_count(2)  # FVD and LPIPS
            expect(page.locator(".headline")).to_contain_text("GT floor")
            expect(page.locator(".headline")).to_contain_text("AE reconstruction")
            expect(page.locator("#not-computed + .missing li")).to_have_count(2)
            expect(page.locator(".missing")).to_contain_text("weights not found")
            expect(page.locator(".grid .labels span")).to_have_count(2 * 5)  # GT, 3 samples, no poke
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
        finally:
            browser.close()
    assert not errors, errors
    assert [url for url in requests if url != path.as_uri() and not url.startswith("data:")] == []

"""``rsvg bench review`` at a small size: both phases run, the ratios are reported, the database is checked."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from rsvg.cli import app


def test_bench_review_reports_both_phases_and_checks_the_database(tmp_path: Path):
    out = tmp_path / "review.json"
    r = CliRunner().invoke(
        app, ["bench", "review", "--annotators", "3", "--decisions", "8", "--images", "4", "--json", str(out)]
    )
    assert r.exit_code == 0, r.output
    results = json.loads(out.read_text())["results"]
    assert results["alone: requests acknowledged"] == 8 and results["team: requests acknowledged"] == 24
    assert results["alone: client errors"] == 0 and results["team: client errors"] == 0
    assert results["team: decisions/s"] > 0 and results["throughput team / alone"] > 0
    assert results["database check"] == "every acknowledged decision stored once"
    assert results["grounding traffic"] == "no"

"""Dataset statistics (paper Sec. III-B, Figs. 3-4) on built datasets, with and without provenance."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from helpers.scenes import crafted_dataset
from rsvg.commands.stats import stats as stats_command
from rsvg.construct.build import build_dataset
from rsvg.construct.stats import dataset_stats


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    base = tmp_path_factory.mktemp("stats")
    det = crafted_dataset(base / "det", n=8, size=320, seed=2)
    summary = build_dataset(det, base / "rsvg", seed=0)
    return base / "rsvg", summary


def test_stats_on_a_built_dataset(built: tuple[Path, object], tmp_path: Path) -> None:
    root, summary = built
    result = dataset_stats(root, tmp_path / "stats")
    for name in ("fig3_expressions.png", "fig4_boxes_words.png", "stats.json", "stats.md"):
        assert (tmp_path / "stats" / name).stat().st_size > 0
    assert (tmp_path / "stats" / "fig3_expressions.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "stats" / "stats.json").read_text())["expressions"] == result["expressions"]
    assert result["expressions"] == summary.expressions
    assert result["with_provenance"] == summary.expressions
    assert result["images"] == summary.images_written
    assert sum(result["categories"].values()) == summary.expressions
    assert sum(result["attributes_per_expression"].values()) == summary.expressions
    shares = summary.step_shares
    for step in ("cat+", "att+", "rel+"):
        assert result["content_percent"][step] == pytest.approx(shares[step], abs=0.01)
    assert result["content_percent"]["cat"] == 100.0
    length = result["length"]
    assert 2 <= length["min"] <= length["mean"] <= length["max"] <= 25
    assert 10 <= result["vocabulary"] <= 100
    assert 0 < result["box_area_fraction"]["median"] < 0.1
    assert "vehicle" in result["top_words"]["categories"]
    assert sum(result["splits"].values()) == summary.expressions
    assert "| cat+ (%) |" in (tmp_path / "stats" / "stats.md").read_text()
    # the builder writes only DIOR-RSVG's words
    assert result["outside_dior_rsvg_vocabulary"]["tokens_percent"] == 0.0
    assert result["outside_dior_rsvg_vocabulary"]["distinct_percent"] == 0.0
    row = "| words outside DIOR-RSVG's vocabulary (% of words / of distinct words) | 0.00 / 0.00 | 0 / 0 |"
    assert row in (tmp_path / "stats" / "stats.md").read_text()


def test_stats_without_provenance_reads_attributes_from_text(built: tuple[Path, object], tmp_path: Path) -> None:
    root, _ = built
    with_prov = dataset_stats(root, tmp_path / "a")
    stripped = tmp_path / "stripped"
    shutil.copytree(root, stripped)
    for xml in (stripped / "Annotations").glob("*.xml"):
        xml.write_text(re.sub(r"\s*<provenance>.*?</provenance>", "", xml.read_text()))
    assert "provenance" not in "".join(p.read_text() for p in (stripped / "Annotations").glob("*.xml"))
    without = dataset_stats(stripped, tmp_path / "b")
    assert without["with_provenance"] == 0
    # The text says exactly what the provenance says: the same attribute and relation breakdowns.
    for key in (
        "attributes_per_expression",
        "own_attributes_by_category_percent",
        "relations_by_category_percent",
        "categories",
        "length",
        "vocabulary",
    ):
        assert without[key] == with_prov[key], key
    for key in ("cat", "att", "rel"):
        assert without["content_percent"][key] == with_prov["content_percent"][key]
    # from the text every sentence counts as rel+; the construction also writes sentences about objects that
    # their phrase already singles out
    assert without["content_percent"]["rel+"] == with_prov["content_percent"]["rel"]
    assert with_prov["content_percent"]["rel+"] <= with_prov["content_percent"]["rel"]
    assert without["top_words"]["attributes"] == with_prov["top_words"]["attributes"]
    # cat+ / att+ / rel+ are labelled as estimates where they come from the text, and explained; not otherwise
    text_md = (tmp_path / "b" / "stats.md").read_text()
    assert "cat+ (%, estimated from the text)" in text_md and "(from the construction)" in text_md
    assert "not comparable" in text_md
    built_md = (tmp_path / "a" / "stats.md").read_text()
    assert "| cat+ (%) |" in built_md and "estimated" not in built_md


def test_stats_on_the_official_layout(official_dataset: Path, tmp_path: Path) -> None:
    result = dataset_stats(official_dataset, tmp_path / "s")
    assert result["expressions"] == 6 and result["with_provenance"] == 0
    assert result["content_percent"]["rel"] == pytest.approx(100 / 6, abs=0.01)  # "A ship below the ..."
    assert result["own_attributes_by_category_percent"]["vehicle"]["color"] == 100.0
    assert result["own_attributes_by_category_percent"]["vehicle"]["location"] == 100.0
    assert result["own_attributes_by_category_percent"]["ship"]["size"] == 50.0
    assert result["relations_by_category_percent"]["ship"]["relative_location"] == 50.0


def _counts(outside: dict) -> tuple[int, int, int, int]:
    return outside["tokens"], outside["tokens_outside"], outside["distinct"], outside["distinct_outside"]


def test_words_outside_dior_rsvg_on_a_hand_made_dataset(official_dataset: Path, tmp_path: Path) -> None:
    # six expressions, 37 words, 20 distinct; DIOR-RSVG never says "round" (its tanks are "oval")
    result = dataset_stats(official_dataset, tmp_path / "s")
    outside = result["outside_dior_rsvg_vocabulary"]
    assert _counts(outside) == (37, 1, 20, 1)
    assert outside["tokens_percent"] == pytest.approx(100 / 37, abs=0.01)
    assert outside["distinct_percent"] == 5.0
    assert outside["top_outside"] == {"round": 1}
    md = (tmp_path / "s" / "stats.md").read_text()
    assert "| 2.70 / 5.00 | 0 / 0 |" in md and "Words outside DIOR-RSVG's vocabulary: round (1)." in md
    # two unknown words where "gray" was: 38 words, 21 distinct, 3 of them outside
    xml = next(p for p in (official_dataset / "Annotations").glob("*.xml") if "gray vehicle" in p.read_text())
    xml.write_text(xml.read_text().replace("The gray vehicle", "The grayish gizmo vehicle"))
    outside = dataset_stats(official_dataset, tmp_path / "t")["outside_dior_rsvg_vocabulary"]
    assert _counts(outside) == (38, 3, 21, 3)
    assert outside["top_outside"] == {"round": 1, "grayish": 1, "gizmo": 1}


def test_stats_command(built: tuple[Path, object], tmp_path: Path) -> None:
    app = typer.Typer()
    app.command()(stats_command)
    runner = CliRunner()
    ok = runner.invoke(app, [str(built[0]), str(tmp_path / "out")])
    assert ok.exit_code == 0, ok.output
    assert (tmp_path / "out" / "stats.md").is_file()
    assert "not DIOR-RSVG words" in ok.output and "0.00 / 0.00" in ok.output
    missing = runner.invoke(app, [str(tmp_path / "nowhere"), str(tmp_path / "o")])
    assert missing.exit_code == 2 and "nowhere" in missing.output
    empty = tmp_path / "empty"
    (empty / "Annotations").mkdir(parents=True)
    none = runner.invoke(app, [str(empty), str(tmp_path / "o")])
    assert none.exit_code == 2 and "no usable expression" in none.output

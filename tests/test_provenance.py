"""An answer says where its box comes from: which steps after the first look changed it, and the first look's box
(the one the cell heatmap shows), in the Python result, `rsvg ground`'s JSON and picture, and /api/ground."""

from __future__ import annotations

import json

import pytest
import torch
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from helpers.models import WEB_TINY, lite_checkpoint
from rsvg.cli import app
from rsvg.config import load_config
from rsvg.engine.batching import forward_batch
from rsvg.engine.trainer import train
from rsvg.inference import Grounder
from rsvg.viz import answer_boxes
from rsvg.web.app import create_app


@pytest.fixture(scope="module")
def lite(tmp_path_factory: pytest.TempPathFactory) -> Grounder:
    return Grounder.from_checkpoint(lite_checkpoint(tmp_path_factory))


def test_the_result_names_the_steps_and_the_first_look(lite, official_dataset):
    image = official_dataset / "JPEGImages" / "00002.jpg"
    result = lite.predict(image, "the large ship on the lower right", return_attention=True)
    assert list(result.steps) == list(result.step_titles) == ["reranked", "second_look", "refined"]
    assert result.steps["refined"]  # the refinement always reads the answer again
    assert result.first_look_box is not None and len(result.first_look_box) == 4
    assert "box refinement" in result.moved_by and "box refinement" in result.provenance()
    out = result.to_dict()
    assert out["steps"] == result.steps and out["provenance"] == result.provenance()
    assert out["first_look_box"] == [round(v, 2) for v in result.first_look_box]
    drawn = answer_boxes(result)
    assert [label for _, _, label in drawn] == ["first look (heatmap)", "answer after " + " + ".join(result.moved_by)]
    assert tuple(drawn[0][0]) == result.first_look_box and tuple(drawn[1][0]) == result.box


def test_the_first_look_box_is_the_best_cells(lite, official_dataset):
    image = official_dataset / "JPEGImages" / "00003.jpg"
    batch, _ = lite._prepare(image, "the white vehicle on the right")
    assert "zoom_image" in batch  # the second look's canvas, from the same sample builder as the dataset's
    with torch.no_grad():
        out = forward_batch(lite.model, batch)
    first, steps = lite._provenance(out)
    best = out.cell_scores[0].argmax()
    rank = out.stages["rank"]
    assert torch.equal(first, out.cell_boxes[0, best])
    assert steps["reranked"] == bool(rank.cells[0, rank.scores[0].argmax()] != best)


def test_a_model_without_later_steps_says_nothing_more(official_dataset, tmp_path):
    torch.manual_seed(0)
    train(load_config(None, [*WEB_TINY, f"data.root={official_dataset}"]), tmp_path / "run")
    result = Grounder.from_checkpoint(tmp_path / "run" / "best").predict(
        official_dataset / "JPEGImages" / "00002.jpg", "a ship"
    )
    assert result.steps == {} and result.first_look_box is None and result.provenance() == ""
    assert set(result.to_dict()) == {"box", "width", "height"}
    assert [label for _, _, label in answer_boxes(result)] == ["prediction"]


def test_ground_command_and_api_report_provenance(lite, tmp_path_factory, official_dataset, tmp_path):
    image = official_dataset / "JPEGImages" / "00002.jpg"
    query = "the large ship on the lower right"
    ckpt = lite_checkpoint(tmp_path_factory)
    res = CliRunner().invoke(app, ["ground", "--checkpoint", str(ckpt), str(image), query, "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    answer = json.loads(res.output.strip().splitlines()[-1])
    expected = lite.predict(image, query)
    assert answer["steps"] == expected.steps and answer["provenance"] == expected.provenance()
    assert answer["box"] == [round(v, 2) for v in expected.box]

    client = TestClient(create_app(dataset=official_dataset, grounder=lite))
    r = client.post("/api/ground", files={"image": ("s.jpg", image.read_bytes(), "image/jpeg")}, data={"query": query})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["steps"] == expected.steps and body["provenance"] == expected.provenance()
    assert body["first_look_box"] == [round(v, 2) for v in expected.first_look_box]

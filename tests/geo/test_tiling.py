"""Tiles cover the scene with the asked overlap, answers map back to scene pixels, ranking and merging keep the
best of overlapping answers, and the score the ranking uses is the one the model's map shows."""

from __future__ import annotations

import itertools

import pytest
import torch

from rsvg.geo.tiling import Answer, Tile, axis_starts, box_iou, merge_answers, tile_grid, tile_side
from rsvg.models.outputs import GroundingOutput


def test_axis_starts_end_at_the_edge():
    assert axis_starts(100, 128, 96) == [0]  # shorter than a tile: one tile
    assert axis_starts(128, 128, 96) == [0]
    assert axis_starts(512, 128, 96) == [0, 96, 192, 288, 384]
    assert axis_starts(500, 128, 96) == [0, 96, 192, 288, 372]  # the last one moved back to end at 500


@pytest.mark.parametrize(("width", "height", "scale", "overlap"), [(512, 512, 1.0, 0.25), (1000, 300, 2.5, 0.5)])
def test_tiles_cover_the_scene_with_the_overlap(width, height, scale, overlap):
    tiles = tile_grid(width, height, 64, scale, overlap)
    side = tile_side(64, scale)
    covered = torch.zeros(height, width, dtype=torch.bool)
    for t in tiles:
        assert t.col >= 0 and t.row >= 0 and t.col + t.width <= width and t.row + t.height <= height
        assert (t.width, t.height) == (min(side, width), min(side, height))
        assert (t.out_width, t.out_height) == (64 if t.width == side else round(t.width / scale), 64)
        covered[t.row : t.row + t.height, t.col : t.col + t.width] = True
    assert covered.all()
    starts = sorted({t.col for t in tiles})
    gaps = {b - a for a, b in itertools.pairwise(starts)}
    assert max(gaps) == side - round(side * overlap)  # neighbours overlap by the asked share (the last may more)


def test_a_scene_smaller_than_a_tile_is_one_tile_read_at_the_scale():
    (tile,) = tile_grid(100, 60, 64, 2.0)
    assert tile.window == (0, 0, 100, 60) and (tile.out_width, tile.out_height) == (50, 30)


def test_bad_overlap_is_refused_naming_the_option():
    with pytest.raises(ValueError, match="--overlap"):
        tile_grid(100, 100, 64, 1.0, overlap=0.95)


def test_a_tile_box_maps_back_to_scene_pixels():
    tile = Tile(0, col=256, row=128, width=256, height=256, out_width=128, out_height=128)
    assert tile.to_scene((10, 20, 30, 40)) == (276.0, 168.0, 316.0, 208.0)
    assert tile.box == (256.0, 128.0, 512.0, 384.0)


def _answer(box, score, index=0):
    return Answer(box, score, Tile(index, 0, 0, 10, 10, 10, 10))


def test_merging_keeps_the_best_of_overlapping_answers_and_ranks():
    answers = [
        _answer((0, 0, 10, 10), 0.5, 0),
        _answer((1, 1, 11, 11), 0.9, 1),  # the same object seen from a neighbouring tile, better scored
        _answer((50, 50, 60, 60), 0.7, 2),
        _answer((52, 50, 62, 60), 0.7, 3),  # a tie with the one before: the earlier tile wins
        _answer((100, 100, 110, 110), 0.1, 4),
    ]
    merged = merge_answers(answers, iou_threshold=0.5)
    assert [(a.tile.index, a.rank) for a in merged] == [(1, 1), (2, 2), (4, 3)]
    assert [a.tile.index for a in merge_answers(answers, 0.5, top_k=2)] == [1, 2]
    assert len(merge_answers(answers, iou_threshold=1.0)) == 5  # nothing is a duplicate at IoU 1
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="--top-k"):
        merge_answers(answers, top_k=0)


def test_the_score_is_the_peak_of_the_heads_map():
    # cells head: the chosen cell's softmax probability, whatever the attention request
    scores = torch.tensor([[2.0, 0.0, float("-inf"), 1.0], [0.0, 0.0, 0.0, 0.0]])
    out = GroundingOutput(torch.empty(0), cell_boxes=torch.zeros(2, 4, 4))
    out.choose_cell(scores, (2, 2), need_attention=False)
    expected = scores.softmax(1).amax(1)
    assert torch.allclose(out.score(), expected) and out.score()[1] == pytest.approx(0.25)
    out.choose_cell(scores, (2, 2), need_attention=True)
    assert torch.allclose(out.score(), out.attention.flatten(1).amax(1))
    # [REG] head: the peak of the [REG] token's attention over the visual tokens, none without it
    attention = torch.tensor([[[0.1, 0.6], [0.2, 0.1]]])
    assert GroundingOutput(torch.zeros(1, 4), attention=attention).score().tolist() == pytest.approx([0.6])
    assert GroundingOutput(torch.zeros(1, 4)).score() is None

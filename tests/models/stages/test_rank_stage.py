"""Candidate ranking (model.stages.rank): the colour map, the candidates' features, the targets, the model, the loss."""

import pytest
import torch
import torch.nn.functional as F

from helpers.models import TINY, inputs, model_config
from rsvg.models.build import build_model
from rsvg.models.loss import LossConfig
from rsvg.models.stage_inputs import CoreFacts
from rsvg.models.stages.colours import COLOUR_STRIDE, colour_channels, colour_map, unfold_colour_map
from rsvg.models.stages.rank import CandidateRanking, RankOptions, candidate_colours, ranking_targets

RANK = {**TINY, "head": "cells", "stages": {"object_head": {}, "rank": {"candidates": 3, "layers": 1}}}


@pytest.fixture(scope="module")
def rank_model():
    torch.manual_seed(0)
    return build_model(model_config(**RANK)).eval()


def test_the_colour_map_folds_into_the_cells_and_unfolds_back():
    image = torch.randn(2, 3, 64, 64)
    folded = colour_map(image, 32)
    assert folded.shape == (2, colour_channels(32), 2, 2) and colour_channels(32) == 3 * (32 // COLOUR_STRIDE) ** 2
    assert torch.allclose(unfold_colour_map(folded, 32), F.avg_pool2d(image, COLOUR_STRIDE), atol=1e-6)


def test_candidate_colours_read_the_box_and_its_surroundings():
    colours = torch.zeros(1, 3, 32, 32)
    colours[0, 0, 8:16, 8:16] = 1.0  # a red square on black
    boxes = torch.tensor([[[8, 8, 16, 16], [20, 20, 28, 28]]]) / 32
    feats = candidate_colours(colours, boxes)
    assert feats.shape == (1, 2, 2 * 3 * 16)
    box, grown = feats[0, 0, :48].reshape(3, 16), feats[0, 0, 48:].reshape(3, 16)
    assert torch.allclose(box[0], torch.ones(16)) and box[1:].abs().max() == 0  # all red inside
    assert 0 < grown[0].mean() < 1  # the surroundings: red in the middle, black around
    assert feats[0, 1].abs().max() == 0  # the other box is on black


def test_ranking_targets_prefer_a_centre_inside_then_the_overlap():
    target = torch.tensor([[0.4, 0.4, 0.6, 0.6], [0.0, 0.0, 0.1, 0.1]])
    boxes = torch.tensor(
        [
            # a large box overlapping more, centred at (0.52, 0.52); a small one centred inside; one far away
            [[0.35, 0.35, 0.69, 0.69], [0.45, 0.45, 0.5, 0.5], [0.8, 0.8, 0.9, 0.9]],
            # none centred in the tiny target, one overlapping it: no target
            [[0.05, 0.05, 0.3, 0.3], [0.7, 0.7, 0.8, 0.8], [0.5, 0.5, 0.6, 0.6]],
        ]
    )
    best, has_one = ranking_targets(boxes, target)
    assert best[0] == 0 and has_one.tolist() == [True, False]
    boxes[0, 0] += 0.2  # now centred outside: the small box inside wins although the other overlaps more
    best, _ = ranking_targets(boxes, target)
    assert best[0] == 1


def test_the_model_answers_with_the_ranked_candidate(rank_model):
    image, pad, ids, mask = inputs()
    out = rank_model(image, pad, ids, mask)
    assert rank_model.feature_channels == rank_model.core.level_channels[32] + colour_channels(32)
    rank = out.stages["rank"]
    assert rank.scores.shape == rank.cells.shape == (2, 3) and rank.boxes.shape == (2, 3, 4)
    best = rank.scores.argmax(1)
    assert torch.equal(out.boxes, rank.boxes[torch.arange(2), best])
    # the candidates are the first look's best cells, in its order
    assert torch.equal(rank.cells, out.cell_scores.topk(3, 1).indices)
    # sample 0's image is half padding: of its 4 cells 2 are padding, so its third candidate is one and cannot win
    assert torch.isinf(rank.scores[0, 2]) and torch.isfinite(rank.scores[1]).all()
    # cached features carry the colour map: the same answer from them
    cached = rank_model(None, pad, ids, mask, image_features=rank_model.encode_image(image))
    assert torch.allclose(cached.stages["rank"].scores, rank.scores, atol=1e-5, equal_nan=True)


def test_a_feature_map_without_the_colour_channels_is_refused(rank_model):
    image, pad, ids, mask = inputs()
    feats = rank_model.encode_image(image)[:, : -colour_channels(32)]
    with pytest.raises(ValueError, match="channels"):
        rank_model(None, pad, ids, mask, image_features=feats)


def test_the_ranking_loss_trains_only_the_ranker():
    torch.manual_seed(0)
    model = build_model(model_config(**RANK)).train()
    image, pad, ids, mask = inputs()
    out = model(image, pad, ids, mask)
    rank = out.stages["rank"]
    target = rank.boxes[:, 1].detach().clone()  # the second candidate is the answer
    # the batch as the dataset gives it: boxes in network pixels (the image is 64 px)
    objects = [torch.tensor([[1, *(64 * t).tolist()]]) for t in target]
    batch = {"box": target * 64, "objects": objects, "category_index": torch.tensor([1, 1])}
    losses = model.loss(out, batch, LossConfig())
    best, has_one = ranking_targets(rank.boxes, target)
    assert has_one.all() and best.tolist() == [1, 1]
    assert torch.isclose(losses["rank"], F.cross_entropy(rank.scores.clamp(min=-1e4), best))
    # the first look's scores, boxes and categories enter detached: the ranking's gradient reaches the ranker and
    # (here trainable, as the second look's does) the text encoder, nothing else
    F.cross_entropy(rank.scores.clamp(min=-1e4), best).backward()
    reached = {
        ".".join(n.split(".")[:2])
        for n, p in model.named_parameters()
        if p.grad is not None and p.grad.abs().sum() > 0
    }
    assert reached == {"stages.rank", "core.text"}


def test_the_ranker_learns_to_pick_by_colour():
    # two candidates per image, one red and one blue square, in random order; the query says which colour
    torch.manual_seed(0)
    core = CoreFacts(image_size=64, dim=32, text_dim=8, heads=4, ffn_dim=64, max_tokens=4, level_channels={32: 8})
    ranker = CandidateRanking(RankOptions(candidates=3, layers=1), core)
    assert ranker.categories == 20
    red, blue = torch.randn(8), torch.randn(8)
    opt = torch.optim.Adam(ranker.parameters(), lr=3e-3)

    def batch(n):
        colours = torch.zeros(n, 3, 16, 16)
        boxes = torch.tensor([[2, 2, 6, 6], [10, 10, 14, 14]], dtype=torch.float32) / 16
        swap = torch.rand(n) < 0.5
        colours[:, 0, 2:6, 2:6] = (~swap).float()[:, None, None]
        colours[:, 2, 2:6, 2:6] = swap.float()[:, None, None]
        colours[:, 0, 10:14, 10:14] = swap.float()[:, None, None]
        colours[:, 2, 10:14, 10:14] = (~swap).float()[:, None, None]
        want_red = torch.rand(n) < 0.5
        sentence = torch.where(want_red[:, None], red, blue)
        answer = (want_red == swap).long()  # the red square is candidate 1 when swapped
        words = sentence[:, None].repeat(1, 3, 1)
        return boxes.expand(n, -1, -1), colours, words, sentence, answer

    def scores(boxes, colours, words, sentence):
        first = torch.zeros(len(boxes), 2)
        text_pad = torch.zeros(len(boxes), 3, dtype=torch.bool)
        return ranker.score_candidates(boxes, first, None, colours, words, sentence, text_pad)

    for _ in range(150):
        boxes, colours, words, sentence, answer = batch(32)
        loss = F.cross_entropy(scores(boxes, colours, words, sentence), answer)
        opt.zero_grad()
        loss.backward()
        opt.step()
    boxes, colours, words, sentence, answer = batch(200)
    with torch.no_grad():
        accuracy = (scores(boxes, colours, words, sentence).argmax(1) == answer).float().mean()
    assert accuracy > 0.95


def test_rank_needs_the_cells_head():
    with pytest.raises(ValueError, match=r"model\.stages\.rank .* model\.head: cells"):
        model_config(**{**RANK, "head": "reg"})
    with pytest.raises(ValueError, match=r"stages\.rank\.candidates"):
        model_config(**{**RANK, "stages": {"rank": {"candidates": 1}}})

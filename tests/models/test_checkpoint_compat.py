"""A model saved before the stages moved to ``rsvg.models.stages`` loads and answers exactly as it did.

The fixture was written on 2026-12-03 by the model code as it was before the move (parameters filled as
:func:`legacy_state` fills them, then the model run on the stored inputs).

``fixtures/legacy_tiny_model.json`` lists a tiny model's parameters under their old names (every stage on), in the
order they were filled from a seeded generator; ``fixtures/legacy_tiny_io.safetensors`` holds fixed inputs (visual
and text features, training crops, objects) and what that model returned for them then: the answer and every
intermediate, in evaluation and in a training forward, and the loss terms. Run with ``OMP_NUM_THREADS=1`` on the
x86-64 machine that wrote the fixture (an AMD EPYC), every tensor is bit-identical; other thread counts and CPUs
change the kernels' summation order, and float32 rounding grows through the model's dozen layers: on an Intel Xeon a
box corner moved by 1.7e-5 px. The comparison allows 1e-4 (absolute and relative; boxes are in pixels of a 64-px
input), far below any change of behaviour.
"""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from helpers.models import model_config
from rsvg.engine.batching import forward_batch
from rsvg.models.build import build_model
from rsvg.models.loss import LossConfig

DATA = Path(__file__).parent / "fixtures"


def legacy_state() -> tuple[dict, dict[str, torch.Tensor]]:
    spec = json.loads((DATA / "legacy_tiny_model.json").read_text())
    g = torch.Generator().manual_seed(5)
    state = {}
    for name, shape in spec["parameters"]:
        value = torch.randn(shape, generator=g) * (0.3 if len(shape) > 1 else 0.1)
        state[name] = value + (1.0 if name.endswith("norm.weight") else 0.0)
    return spec["config"], state


@pytest.fixture(scope="module")
def legacy():
    config, state = legacy_state()
    torch.manual_seed(0)
    model = build_model(model_config(**config))  # its flat stage options, as configs had them then
    missing, unexpected = model.load_state_dict(state, strict=False)
    io = load_file(DATA / "legacy_tiny_io.safetensors")
    return model, missing, unexpected, io


def close(a: torch.Tensor, b: torch.Tensor) -> None:
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4, equal_nan=True)


def test_old_parameter_names_load_under_the_stages(legacy):
    model, missing, unexpected, _ = legacy
    assert unexpected == []
    # only the backbone and the text encoder were left out of the fixture (their own weights never moved)
    assert missing and all(k.startswith(("core.backbone.", "core.text.")) for k in missing)
    names = dict(model.named_parameters())
    assert "stages.rank.first_weight" in names and "stages.object_head.prior_scale" in names


def batch_of(io: dict[str, torch.Tensor]) -> dict:
    return {
        "image_features": io["in.feats"],
        "padding_mask": io["in.pad"],
        "input_ids": io["in.ids"],
        "attention_mask": io["in.mask"],
    }


def test_evaluation_answers_as_before(legacy):
    model, _, _, io = legacy
    model.eval()
    with torch.no_grad():
        text = (io["in.words"], io["in.sentence"])
        b = batch_of(io)
        out = model(
            None,
            b["padding_mask"],
            b["input_ids"],
            b["attention_mask"],
            True,
            image_features=b["image_features"],
            text_features=text,
        )
    close(out.boxes, io["eval.boxes"])
    close(out.attention, io["eval.attention"])
    close(out.mlcm_attention, io["eval.mlcm_attention"])
    close(out.cell_scores, io["eval.cell_scores"])
    close(out.cell_boxes, io["eval.cell_boxes"])
    objects, rank, refine = out.stages["object_head"], out.stages["rank"], out.stages["refine"]
    close(objects.object_logits, io["eval.object_logits"])
    close(objects.query_category_logits, io["eval.query_category_logits"])
    assert torch.equal(rank.cells, io["eval.rank_cells"])
    close(rank.boxes, io["eval.rank_boxes"])
    close(rank.scores, io["eval.rank_scores"])
    close(refine.unrefined, io["eval.unrefined_boxes"])


def test_a_training_forward_and_its_loss_as_before(legacy):
    model, _, _, io = legacy
    model.train()
    objects = [io[f"in.objects.{i}"] for i in range(3)]
    batch = batch_of(io) | {
        "zoom_features": io["in.zoom_features"],
        "zoom_origin": io["in.zoom_origin"],
        "zoom_valid": io["in.zoom_valid"],
        # the dataset's objects and boxes are in network pixels (64-px input)
        "objects": [torch.cat([o[:, :1], o[:, 1:] * 64], 1) for o in objects],
        "box": io["in.target"] * 64,
        "category_index": io["in.categories"],
    }
    torch.manual_seed(11)  # the refinement's jitter
    with torch.no_grad():
        out = model(
            None,
            batch["padding_mask"],
            batch["input_ids"],
            batch["attention_mask"],
            False,
            image_features=batch["image_features"],
            text_features=(io["in.words"], io["in.sentence"]),
            extras={k: batch[k] for k in model.batch_keys if k in batch},
        )
        losses = model.loss(out, batch, LossConfig(l1_weight=5, giou_weight=2, smooth_l1_beta=0))
    close(out.boxes, io["train.boxes"])
    close(out.cell_scores, io["train.cell_scores"])
    close(out.stages["rank"].scores, io["train.rank_scores"])
    zoom = out.stages["zoom"]
    assert torch.equal(zoom.rows, io["train.zoom_rows"])
    close(zoom.scores, io["train.zoom_scores"])
    close(zoom.boxes, io["train.zoom_boxes"])
    close(out.stages["refine"].boxes, io["train.refine_boxes"])
    close(out.stages["refine"].truth, io["train.refine_truth"])
    expected = {k[len("loss.") :]: v for k, v in io.items() if k.startswith("loss.")}
    assert set(losses) == set(expected)
    for name, value in expected.items():
        close(losses[name].detach().reshape(1), value)


def test_forward_batch_hands_the_stages_their_batch_entries(legacy):
    model, _, _, io = legacy
    model.eval()
    assert set(model.batch_keys) == {"zoom_image", "zoom_features", "zoom_origin", "zoom_valid", "objects"}
    with torch.no_grad():
        out = forward_batch(model, batch_of(io) | {"unrelated": 1})
    assert out.boxes.shape == (3, 4)

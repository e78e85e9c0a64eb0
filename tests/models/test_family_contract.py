"""What every model family must do (``docs/models.md``, "Adding a model family"): each family of the registry,
in each of its tiny configs below, goes through the same checks as the trainer, the evaluation, the grounder and
the benchmarks use it. A family without a tiny config here fails :func:`test_every_family_has_tiny_configs`."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
import torch

from helpers.models import TINY, inputs
from rsvg.config import RunConfig
from rsvg.engine.checkpoint import checkpoint_meta, model_text_files, save_checkpoint
from rsvg.inference import Grounder
from rsvg.models.build import build_model
from rsvg.models.interface import GroundingModel
from rsvg.models.loss import LossConfig
from rsvg.models.outputs import GroundingOutput
from rsvg.models.registry import FAMILIES, model_config_from_dict

#: per family, tiny configs (``model:`` sections) covering its heads and, where it carries them, every stage
TINY_CONFIGS: dict[str, dict[str, dict]] = {
    "mgvlf": {
        "paper": TINY,
        "baseline": {**TINY, "mlcm": False},
        "reg_fixes": {**TINY, "reg_from_query": True, "reg_centre_from_attention": True},
        "lite": {
            **TINY,
            "freeze_backbone": True,
            "stride16_detail": True,
            "positions_in_tokens": True,
            "visual_norm": True,
            "text_norm": True,
            "head": "cells",
            "stages": {
                "object_head": {},
                "rank": {"candidates": 3, "layers": 1},
                "zoom": {"window": 32, "jitter": 8.0, "max_side": 24.0, "layers": 1},
                "refine": {"bins": 3},
            },
        },
    },
}
TINY_FAOA = {"backbone": "efficientnet_lite0", "pretrained_backbone": False, "image_size": 64, "max_tokens": 12}
TINY_CONFIGS["faoa"] = {
    "bert": {**TINY_FAOA, "emb_size": 32},
    "no_coord": {**TINY_FAOA, "emb_size": 32, "coordmap": False},
    "lite": {**TINY_FAOA, "emb_size": 16, "freeze_backbone": True},
    "lstm": {
        **TINY_FAOA,
        "emb_size": 16,
        "text": "lstm",
        "freeze_text_encoder": False,
        "vocabulary": ["the", "red", "car", "ship", "left"],
    },
}
TINY_RESC = {"backbone": "efficientnet_lite0", "pretrained_backbone": False, "image_size": 64, "max_tokens": 12}
TINY_CONFIGS["resc"] = {
    "base": {**TINY_RESC, "emb_size": 32},
    "cat_one_round": {**TINY_RESC, "emb_size": 16, "fusion": "cat", "rounds": 1, "coordmap": False},
    "lite": {**TINY_RESC, "emb_size": 16, "freeze_backbone": True},
}
TINY_CONFIGS["lbyl"] = {
    "bert": {**TINY_FAOA, "emb_size": 16, "out_dim": 16, "ctx_dim": 8},
    "lite": {
        **TINY_FAOA,
        "emb_size": 16,
        "out_dim": 16,
        "ctx_dim": 8,
        "bgr_input": False,
        "freeze_backbone": True,
        "freeze_text_encoder": True,
    },
    "lstm": {
        **TINY_FAOA,
        "emb_size": 16,
        "out_dim": 16,
        "ctx_dim": 8,
        "text": "lstm",
        "freeze_text_encoder": False,
        "vocabulary": ["the", "red", "car", "ship", "left"],
    },
}
TINY_TRANSVG = {
    "backbone": "efficientnet_lite0",
    "pretrained_backbone": False,
    "image_size": 64,
    "max_tokens": 12,
    "hidden_dim": 32,
    "heads": 4,
    "ffn_dim": 64,
    "visual_encoder_layers": 1,
    "vl_layers": 1,
}
# the options TransVG's and VLTVG's lite configs turn on (src/rsvg/models/detr_branch_config.py)
DETR_LITE_OPTIONS = {
    "positions_in_tokens": True,
    "reg_from_query": True,
    "reg_centre_from_attention": True,
    "stride16_detail": True,
    "visual_norm": True,
    "text_norm": True,
}
TINY_CONFIGS["transvg"] = {
    "paper": TINY_TRANSVG,
    "lite": {
        **TINY_TRANSVG,
        "freeze_backbone": True,
        "freeze_text_encoder": True,
        "visual_encoder_layers": 0,
        **DETR_LITE_OPTIONS,
    },
}
TINY_VLTVG = {**TINY_TRANSVG, "image_size": 96, "decoder_stages": 2}
del TINY_VLTVG["vl_layers"]
TINY_CONFIGS["vltvg"] = {
    "paper": TINY_VLTVG,
    "lite": {
        **TINY_VLTVG,
        "freeze_backbone": True,
        "freeze_text_encoder": True,
        "decoder_stages": 1,
        **DETR_LITE_OPTIONS,
    },
}
TINY_ZSGNET = {
    "backbone": "efficientnet_lite0",
    "pretrained_backbone": False,
    "image_size": 64,
    "max_tokens": 12,
    "vocabulary": ["the", "red", "car", "ship", "left"],
    "word_vectors": "random",
    "emb_dim": 8,
    "lstm_dim": 4,
    "fpn_dim": 8,
    "head_convs": 2,
}
TINY_CONFIGS["zsgnet"] = {
    "paper": TINY_ZSGNET,
    "lite": {**TINY_ZSGNET, "freeze_backbone": True, "word_vectors": "learn"},
}
#: parameters a config's loss reaches with a zero gradient by the reference's own design, and why
ZERO_GRADIENT = {
    # FAOA's LSTM sentence is the BiLSTM's output at the last word: for the backward direction that is its first
    # step, computed from the zero initial state, so its hidden-to-hidden weights get no gradient (as in the reference)
    ("faoa", "lstm"): {"text.rnn.weight_hh_l0_reverse"},
    # ZSGNet reads its sentence the same way; the reference starts the LSTM from a random state, so there the
    # backward direction's first step reaches those weights, but rsvg starts from zeros (rsvg.models.word_vectors)
    ("zsgnet", "paper"): {"text.rnn.weight_hh_l0_reverse"},
    ("zsgnet", "lite"): {"text.rnn.weight_hh_l0_reverse"},
}
CASES = [(arch, name) for arch, configs in TINY_CONFIGS.items() for name in configs]


def test_every_family_has_tiny_configs():
    assert set(TINY_CONFIGS) == set(FAMILIES), "add the new family's tiny configs to TINY_CONFIGS"


@pytest.fixture(scope="module", params=CASES, ids=[f"{a}-{n}" for a, n in CASES])
def case(request):
    arch, name = request.param
    cfg = model_config_from_dict({"arch": arch, **TINY_CONFIGS[arch][name]})
    torch.manual_seed(0)
    return cfg, build_model(cfg)


def batch(model: GroundingModel, training: bool) -> dict:
    """A collated batch of two samples at the model's input, the queries read by the model's own tokenizer, with
    what its parts read in training."""
    image, pad, _, _ = inputs(size=model.image_size)
    tokenizer = model.tokenizer()
    encoded = [tokenizer.encode(q, model.max_tokens, truncate=True) for q in ("the red car on the left", "a ship")]
    ids = torch.tensor([e[0] for e in encoded])
    mask = torch.tensor([e[1] for e in encoded])
    box = torch.tensor([[0.05, 0.05, 0.95, 0.45], [0.1, 0.1, 0.9, 0.9]]) * model.image_size
    out = {"image": image, "padding_mask": pad, "input_ids": ids, "attention_mask": mask, "box": box}
    if training:
        samples = [{"box": b} for b in box]
        generator = torch.Generator().manual_seed(1)
        for stage in model.stage_list():
            for i, sample in enumerate(samples):
                stage.example_extras(sample, i, generator)
        for key in samples[0]:
            if key != "box":
                values = [s[key] for s in samples]
                out[key] = values if key == "objects" else torch.stack(values)
    return out


def run(model: GroundingModel, b: dict, **kwargs) -> GroundingOutput:
    extras = {k: b[k] for k in model.batch_keys if k in b}
    return model(
        b.get("image"), b["padding_mask"], b["input_ids"], b["attention_mask"], extras=extras, **kwargs
    )


def test_the_config_round_trips_and_names_its_family(case):
    cfg, model = case
    assert model_config_from_dict(cfg.to_dict()) == cfg
    assert isinstance(model, GroundingModel) and model.arch == cfg.arch
    assert (model.image_size, model.max_tokens) == (cfg.image_size, cfg.max_tokens)
    assert len(model.mean) == len(model.std) == 3
    ids, mask = model.tokenizer().encode("the red car", model.max_tokens, truncate=True)
    assert len(ids) == len(mask) == model.max_tokens


def test_the_config_alone_gives_the_models_input_side(case):
    # what the data pipeline reads without building the model (rsvg bench model's data phase): the same
    # normalisation and the same token ids as the model's own
    cfg, model = case
    assert cfg.normalisation() == (tuple(model.mean), tuple(model.std))
    for query in ("the red car on the left of the ship", "zebra"):
        length = model.max_tokens
        assert cfg.tokenizer().encode(query, length, truncate=True) == model.tokenizer().encode(query, length, True)


def test_forward_gives_finite_boxes_and_the_same_from_cached_features(case):
    _, model = case
    model.eval()
    b = batch(model, training=False)
    with torch.inference_mode():
        out = run(model, b, need_attention=True)
        features = model.encode_image(b["image"])
        cached = run(model, {**b, "image": None}, image_features=features, need_attention=True)
    assert isinstance(out, GroundingOutput) and out.boxes.shape == (2, 4)
    assert torch.isfinite(out.boxes).all()
    assert features.shape[1] == model.feature_channels
    torch.testing.assert_close(cached.boxes, out.boxes, rtol=1e-5, atol=1e-5)
    score = out.score()
    assert score is None or (score.shape == (2,) and ((score >= 0) & (score <= 1)).all())


def test_the_loss_names_its_terms_and_trains_every_parameter(case, request):
    model = copy.deepcopy(case[1]).train()
    # a layer initialised to zero (e.g. a refiner that starts by changing nothing) passes no gradient to the layers
    # before it: give such layers small weights, so every parameter's path to the loss shows
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad and p.dim() > 1 and not p.any():
                p.normal_(std=0.01)
    b = batch(model, training=True)
    cfg = LossConfig()
    torch.manual_seed(2)
    out = run(model, b, need_attention=model.needs_attention(cfg))
    losses = model.loss(out, b, cfg)
    assert "loss" in losses and set(losses) <= set(model.loss_terms(cfg))
    assert all(torch.isfinite(v).all() for v in losses.values())
    model.zero_grad()
    losses["loss"].backward()
    untouched = [
        n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)
    ]
    assert untouched == sorted(ZERO_GRADIENT.get(tuple(request.node.callspec.id.split("-", 1)), ()))


def test_every_parameter_has_an_optimiser_group(case):
    _, model = case
    names = {n for n, _ in model.named_parameters()}
    assert {model.reference_group(n) for n in names} <= {"visual", "text", "rest"}
    assert model.pretrained_parameter_names() <= names


def test_a_checkpoint_answers_bit_identically_at_one_thread(case, tmp_path):
    cfg, model = case
    model.eval()
    folder = save_checkpoint(
        tmp_path / "best", model, checkpoint_meta(model, RunConfig(model=cfg), {}), model_text_files(model)
    )
    loaded = Grounder.from_checkpoint(folder, fold_batchnorm=False).model
    mode = getattr(model.text, "sentence_mode", None) or cfg.sentence_feature
    assert type(loaded) is type(model) and loaded.cfg == replace(cfg, sentence_feature=mode)
    b = batch(model, training=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.inference_mode():
            want, got = run(model, b), run(loaded, b)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(want.boxes, got.boxes)

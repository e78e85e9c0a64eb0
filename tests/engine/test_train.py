"""Training: it learns (overfits a few samples), resume equals an uninterrupted run, checkpoints load."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from helpers.datasets import make_official_dataset
from helpers.models import TINY_MODEL, model_dataset, tiny_config
from rsvg.data.image_io import ImageReadError
from rsvg.data.tokenizer import QueryTooLongError
from rsvg.engine.checkpoint import CheckpointError
from rsvg.engine.trainer import train
from rsvg.inference import Grounder


def _memorise(tmp_path_factory, name: str, *extra: str) -> Path:
    """A tiny model trained on four samples and validated on the same ones until it has memorised them."""
    base = tmp_path_factory.mktemp(name)
    root = make_official_dataset(base / "data")
    for split in ("train", "val"):
        (root / f"{split}.txt").write_text("0\n1\n2\n3\n")
    (root / "test.txt").write_text("4\n5\n")
    cfg = tiny_config(
        root,
        "train.epochs=120",
        "train.batch_size=4",
        "train.lr=2e-3",
        "train.lr_pretrained=2e-4",
        "train.schedule=cosine",
        "train.grad_clip=0",
        "train.eval_every=40",
        "train.save_every_epochs=1000",
        "model.hidden_dim=64",
        "model.ffn_dim=128",
        "model.dropout=0.0",
        "model.freeze_text_encoder=true",
        *extra,
    )
    torch.manual_seed(0)
    train(cfg, base / "run")
    return base / "run"


@pytest.fixture(scope="module")
def memorised(tmp_path_factory) -> Path:
    return _memorise(tmp_path_factory, "memorised")


def _assert_memorised(run: Path) -> None:
    rows = [json.loads(x) for x in (run / "val_predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and min(r["iou"] for r in rows) > 0.9
    history = json.loads((run / "history.json").read_text())
    assert len(history) == 120 and history[-1]["loss"] < history[0]["loss"] / 3
    assert max(h["val"]["Pr@0.5"] for h in history if "val" in h) == 100.0


def test_overfits_a_few_samples(memorised):
    # trained on every sample and validated on the same ones: the model must memorise them
    _assert_memorised(memorised)
    assert {h["amp"] for h in json.loads((memorised / "history.json").read_text())} == {"off"}


def test_overfits_a_few_samples_in_bf16(tmp_path_factory, capsys):
    # the same run under bf16 autocast (fp32 weights, optimiser state and loss) learns the same four answers
    run = _memorise(tmp_path_factory, "memorised_bf16", "train.amp=bf16")
    assert "(amp bf16, frozen encoders bf16: train.amp asks for it)" in " ".join(capsys.readouterr().out.split())
    assert {h["amp"] for h in json.loads((run / "history.json").read_text())} == {"bf16"}
    _assert_memorised(run)


def test_bf16_keeps_a_trained_models_answers(memorised):
    # the tolerance auto's choice of bf16 rests on (rsvg.engine.precision): on trained weights bf16 moves no
    # answer across IoU 0.5 and keeps each box within IoU 0.9 of fp32's
    from rsvg.boxes import paired_iou
    from rsvg.engine.precision import BF16_MIN_IOU_TO_FP32

    fp32 = Grounder.from_checkpoint(memorised / "best", precision="fp32")
    bf16 = Grounder.from_checkpoint(memorised / "best", precision="bf16")
    assert (fp32.precision.amp, bf16.precision.amp) == ("off", "bf16")
    root = memorised.parent / "data"
    for sample in fp32.dataset(root, "val").samples:
        a = fp32.predict(sample.image_path, sample.description).box
        b = bf16.predict(sample.image_path, sample.description).box
        assert a != b  # bf16 did run: its rounding moves the box a little
        gt = np.array([sample.box])
        assert paired_iou(np.array([a]), gt)[0] > 0.5 and paired_iou(np.array([b]), gt)[0] > 0.5
        assert paired_iou(np.array([a]), np.array([b]))[0] >= BF16_MIN_IOU_TO_FP32


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def test_resume_equals_uninterrupted(official_dataset, tmp_path):
    common = ["train.epochs=3", "train.batch_size=2", "train.checkpoint_every_steps=1", "train.seed=5"]
    straight = train(tiny_config(official_dataset, *common), tmp_path / "a")
    # an interrupted run: stop after epoch 1 (fewer epochs), then continue to 3 with --resume
    train(tiny_config(official_dataset, *common[1:], "train.epochs=1"), tmp_path / "b")
    # and one killed mid-epoch: keep the step-1 checkpoint of epoch 2 by copying it when it is written
    resumed = train(tiny_config(official_dataset, *common), tmp_path / "b", resume=True)
    a, b = _weights(tmp_path / "a" / "last"), _weights(tmp_path / "b" / "last")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert straight["best_val_pr50"] == resumed["best_val_pr50"]
    ha = json.loads((tmp_path / "a" / "history.json").read_text())
    hb = json.loads((tmp_path / "b" / "history.json").read_text())
    assert [h["loss"] for h in ha] == [h["loss"] for h in hb]


@pytest.mark.parametrize("amp", ["off", "bf16"])
def test_resume_mid_epoch(official_dataset, tmp_path, monkeypatch, amp):
    # also under bf16 autocast (fp32 master weights and optimiser state): same machine, same threads
    from rsvg.engine import trainer as trainer_mod

    common = ["train.epochs=2", "train.batch_size=1", "train.checkpoint_every_steps=1", "train.seed=2"]
    common.append(f"train.amp={amp}")
    train(tiny_config(official_dataset, *common), tmp_path / "a")

    calls = {"n": 0}
    original = trainer_mod.Trainer._save_last

    def save_then_die(self):
        original(self)
        calls["n"] += 1
        if calls["n"] == 4:  # epoch 2, after its first step (epoch 1 has 3 steps)
            raise KeyboardInterrupt

    monkeypatch.setattr(trainer_mod.Trainer, "_save_last", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(official_dataset, *common), tmp_path / "b")
    monkeypatch.setattr(trainer_mod.Trainer, "_save_last", original)
    state = torch.load(tmp_path / "b" / "last" / "training_state.pt", weights_only=False)
    assert (state["epoch"], state["step_in_epoch"]) == (1, 1)
    train(tiny_config(official_dataset, *common), tmp_path / "b", resume=True)
    a, b = _weights(tmp_path / "a" / "last"), _weights(tmp_path / "b" / "last")
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # the interrupted epoch's loss averages all its steps, those before the interruption too
    ha = json.loads((tmp_path / "a" / "history.json").read_text())
    hb = json.loads((tmp_path / "b" / "history.json").read_text())
    assert [h["loss"] for h in ha] == [h["loss"] for h in hb]


def test_run_folder_guards(official_dataset, tmp_path):
    cfg = tiny_config(official_dataset, "train.epochs=1", "train.batch_size=3")
    train(cfg, tmp_path / "run")
    with pytest.raises(FileExistsError, match="--resume"):
        train(cfg, tmp_path / "run")
    with pytest.raises(FileNotFoundError, match="no training checkpoint"):
        train(cfg, tmp_path / "other", resume=True)
    changed = tiny_config(official_dataset, "train.epochs=1", "train.batch_size=2")
    with pytest.raises(ValueError, match="config differs"):
        train(changed, tmp_path / "run", resume=True)


def test_grounder_from_checkpoint_and_bad_input(official_dataset, tmp_path):
    cfg = tiny_config(official_dataset, "train.epochs=1", "train.batch_size=3")
    train(cfg, tmp_path / "run")
    best = tmp_path / "run" / "best"
    meta = json.loads((best / "config.json").read_text())
    assert meta["rsvg_version"] and meta["model"]["image_size"] == 64 and (best / "text" / "vocab.txt").is_file()
    g = Grounder.from_checkpoint(best)
    image = official_dataset / "JPEGImages" / "00002.jpg"
    res = g.predict(image, "the ship on the left", return_attention=True)
    assert (res.width, res.height) == (200, 160)
    x1, y1, x2, y2 = res.box
    assert x2 >= x1 and y2 >= y1
    assert res.attention.shape == (160, 200) and res.attention.min() >= 0 and res.attention.max() <= 1
    assert res.mlcm_attention.shape == (160, 200) and res.mlcm_attention.max() == pytest.approx(1.0)
    # arrays: grayscale and RGBA work too, and give the same box as the RGB image
    from rsvg.data.image_io import read_image_rgb

    rgb = read_image_rgb(image)
    rgba = np.concatenate([rgb, np.full((*rgb.shape[:2], 1), 255, np.uint8)], 2)
    np.testing.assert_allclose(g.predict(rgba, "the ship on the left").box, res.box, rtol=1e-5)
    assert g.predict(rgb[..., 0], "a ship").width == 200
    # folding the frozen BatchNorm (the default) changes the speed, not the answer
    unfolded = Grounder.from_checkpoint(best, fold_batchnorm=False)
    assert any("FrozenBatchNorm" in type(m).__name__ for m in unfolded.model.modules())
    assert not any("FrozenBatchNorm" in type(m).__name__ for m in g.model.modules())
    np.testing.assert_allclose(unfolded.predict(image, "the ship on the left").box, res.box, rtol=1e-4, atol=1e-3)
    with pytest.raises(ValueError, match="empty"):
        g.predict(image, "   ")
    with pytest.raises(QueryTooLongError, match="tokens"):
        g.predict(image, "the ship " * 20)
    with pytest.raises(ImageReadError, match="not found"):
        g.predict(tmp_path / "missing.png", "a ship")
    (tmp_path / "bad.jpg").write_text("no")
    with pytest.raises(ImageReadError, match=r"bad\.jpg"):
        g.predict(tmp_path / "bad.jpg", "a ship")
    with pytest.raises(CheckpointError, match="not found"):
        Grounder.from_checkpoint(tmp_path / "nope")
    broken = tmp_path / "broken"
    shutil.copytree(best, broken)
    (broken / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="cannot be read"):
        Grounder.from_checkpoint(broken)
    (broken / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match="not an rsvg checkpoint"):
        Grounder.from_checkpoint(broken)


def test_feature_cache_equals_the_backbone_on_the_dataset_images(official_dataset):
    from rsvg.engine.feature_cache import compute_image_features
    from rsvg.models.build import build_model

    cfg = tiny_config(official_dataset, "model.freeze_backbone=true", "model.pretrained_backbone=true")
    torch.manual_seed(0)
    model = build_model(cfg.model).eval()
    ds = model_dataset(official_dataset, "train", model)
    cached = compute_image_features(model, ds.samples, torch.device("cpu"), batch_size=3, channels_last=True)
    assert set(cached) == {s.image_id for s in ds.samples}
    assert any(isinstance(m, torch.nn.Module) and "FrozenBatchNorm" in type(m).__name__ for m in model.modules())
    for i in range(len(ds)):
        sample = ds[i]
        with torch.inference_mode():
            direct = model.encode_image(sample["image"][None])[0]
        got = cached[ds.samples[i].image_id]
        assert got.dtype == torch.float16 and got.shape == direct.shape
        torch.testing.assert_close(got.float(), direct, rtol=2e-3, atol=2e-3 * float(direct.abs().max()))


def test_evaluation_runs_the_backbone_once_per_image_of_a_batch(tmp_path):
    from rsvg.engine.evaluate import eval_loader, predict
    from rsvg.models.build import build_model

    # every object: images 00001 (one expression), 00002 (three), 00003 (two)
    root = make_official_dataset(tmp_path / "d", {"train": [0, 1, 2, 3, 4, 5]})
    cfg = tiny_config(root, "model.head=cells", "model.stride16_detail=true")
    torch.manual_seed(0)
    model = build_model(cfg.model).eval()
    ds = model_dataset(root, "train", model)
    images_seen = []
    encode = model.encode_image
    model.encode_image = lambda image: images_seen.append(len(image)) or encode(image)  # type: ignore[method-assign]
    one_by_one = predict(model, eval_loader(ds, 1, 0, torch.device("cpu")), torch.device("cpu"), image_size=64)
    assert sum(images_seen) == len(ds)
    images_seen.clear()
    shared = predict(model, eval_loader(ds, len(ds), 0, torch.device("cpu")), torch.device("cpu"), image_size=64)
    assert images_seen == [1, 1, 1]  # the three distinct images, one at a time on the CPU
    assert [r["index"] for r in shared] == [r["index"] for r in one_by_one]
    for a, b in zip(shared, one_by_one, strict=True):
        np.testing.assert_allclose(a["pred_box"], b["pred_box"], rtol=1e-4, atol=1e-3)


def test_evaluation_decodes_and_encodes_each_image_once_whatever_the_split_order(tmp_path, monkeypatch):
    from rsvg.data import dataset as dataset_mod
    from rsvg.engine.evaluate import eval_loader, predict
    from rsvg.models.build import build_model

    # the split interleaves the images: 00001, 00003, 00002, 00003, 00002, 00002
    root = make_official_dataset(tmp_path / "d", {"train": [0, 4, 1, 5, 2, 3]})
    cfg = tiny_config(root, "model.head=cells")
    torch.manual_seed(0)
    model = build_model(cfg.model).eval()
    cpu = torch.device("cpu")
    ds = model_dataset(root, "train", model)
    one_by_one = [predict(model, eval_loader(one, 1, 0, cpu), cpu, image_size=64)[0] for one in _singletons(ds)]
    decoded, encoded = [], []
    read = dataset_mod.read_image_rgb
    monkeypatch.setattr(dataset_mod, "read_image_rgb", lambda path: decoded.append(path.name) or read(path))
    encode = model.encode_image
    model.encode_image = lambda image: encoded.append(len(image)) or encode(image)  # type: ignore[method-assign]
    ds = model_dataset(root, "train", model)
    loader = eval_loader(ds, 4, 0, cpu)
    # 00001 (1) and 00003 (2) fill the first batch; 00002's three do not fit beside them
    assert [sorted(ds.samples[i].image_id for i in b) for b in loader.batch_sampler] == [
        ["00001", "00003", "00003"],
        ["00002", "00002", "00002"],
    ]
    rows = predict(model, loader, cpu, image_size=64)
    assert sorted(decoded) == ["00001.jpg", "00002.jpg", "00003.jpg"] and encoded == [1, 1, 1]
    assert [r["index"] for r in rows] == [0, 4, 1, 5, 2, 3]  # the split's order
    for a, b in zip(rows, one_by_one, strict=True):
        assert a["index"] == b["index"]
        np.testing.assert_allclose(a["pred_box"], b["pred_box"], rtol=1e-5, atol=1e-4)


def _singletons(ds):
    """One dataset per sample of ``ds`` (the same model input), to predict each expression on its own."""
    import copy

    for s in ds.samples:
        one = copy.copy(ds)
        one.samples = [s]
        yield one


def test_image_batches_cover_every_index_once_across_ranks():
    from rsvg.engine.sampler import ImageBatchSampler

    ids = ["a", "b", "a", "c", "c", "c", "c", "c", "d", "b"]
    for world in (1, 2, 3):
        seen = []
        for rank in range(world):
            for batch in ImageBatchSampler(ids, 3, rank=rank, world_size=world):
                assert 1 <= len(batch) <= 3
                seen += batch
                # an image is split only when it has more expressions than a batch holds
                for image in {ids[i] for i in batch}:
                    members = [i for i, x in enumerate(ids) if x == image]
                    if len(members) <= 3:
                        assert set(members) <= set(batch)
        assert sorted(seen) == list(range(len(ids)))
    with pytest.raises(ValueError, match="batch_size"):
        ImageBatchSampler(ids, 0)


def test_a_frozen_text_encoder_encodes_each_query_once_with_the_same_features(official_dataset, tmp_path):
    from rsvg.engine.trainer import Trainer

    cfg = tiny_config(official_dataset, "model.freeze_text_encoder=true", "train.epochs=1")
    trainer = Trainer(cfg, tmp_path / "run")
    trainer.close()
    text = trainer.model.text
    assert text.cache_enabled
    fine_tuned = Trainer(tiny_config(official_dataset), tmp_path / "run2")
    fine_tuned.close()
    assert not fine_tuned.model.text.cache_enabled
    tok = text.tokenizer()
    rows = [tok.encode(q, 16) for q in ("the ship on the left", "a ship", "the ship on the left")]
    ids = torch.tensor([r[0] for r in rows])
    mask = torch.tensor([r[1] for r in rows])
    with torch.inference_mode():
        words_ref, sentence_ref = text._encode(ids, mask)
        calls = []
        encode = text._encode
        text._encode = lambda i, m: calls.append(len(i)) or encode(i, m)  # type: ignore[method-assign]
        words, sentence = text(ids, mask)
        again, _ = text(ids[:2], mask[:2])
    # the trainer encoded its splits' queries up front; these two are new: each is encoded once, alone at its own
    # length (so its features do not depend on the batch it came in), and the second call is served from memory
    assert calls == [1, 1]
    torch.testing.assert_close(sentence, sentence_ref, rtol=1e-5, atol=1e-5)
    valid = mask.bool()
    torch.testing.assert_close(words[valid], words_ref[valid], rtol=1e-5, atol=1e-5)
    assert (words[~valid] == 0).all()  # padded positions: masked everywhere, zero here
    torch.testing.assert_close(again, words[:2])


def test_the_backbone_takes_single_images_on_a_cpu_and_chunks_change_nothing():
    from rsvg.engine.feature_cache import backbone_batch_size, encode_images
    from rsvg.models.build import build_model

    assert backbone_batch_size(torch.device("cpu"), 64) == 1
    assert backbone_batch_size(torch.device("cuda"), 64) == 64
    torch.manual_seed(0)
    model = build_model(tiny_config(Path("unused"), "model.stride16_detail=true").model).eval()
    images = torch.randn(3, 3, 64, 64)
    seen = []
    encode = model.encode_image
    model.encode_image = lambda image: seen.append(len(image)) or encode(image)  # type: ignore[method-assign]
    with torch.inference_mode():
        chunked = encode_images(model, images, 64)
        whole = encode(images)
    assert seen == [1, 1, 1]
    torch.testing.assert_close(chunked, whole, rtol=1e-4, atol=1e-5)


def test_auto_on_a_cpu_with_bf16_units(official_dataset, tmp_path, monkeypatch, capsys):
    # the lite config's frozen encoders computed in bf16, its steps in fp32; a config whose backbone trains steps
    # in bf16 (what was measured to pay: rsvg.engine.amp.choose_amp)
    from rsvg.config import load_config
    from rsvg.engine import amp

    monkeypatch.setattr(amp, "cpu_bf16_flags", lambda cpuinfo=None: ["avx512_bf16"])
    common = [*TINY_MODEL, "train.epochs=1", "train.batch_size=2", f"data.root={official_dataset}"]
    train(load_config("configs/mgvlf_lite.yaml", common), tmp_path / "lite")
    header = " ".join(capsys.readouterr().out.split())
    assert "(amp off, frozen encoders bf16: auto: the CPU has avx512_bf16: the frozen encoders' features" in header
    lite = json.loads((tmp_path / "lite" / "history.json").read_text())
    assert [(h["amp"], h["encoders_amp"]) for h in lite] == [("off", "bf16")]
    train(tiny_config(official_dataset, "train.epochs=1", "train.batch_size=2"), tmp_path / "paper")
    paper = json.loads((tmp_path / "paper" / "history.json").read_text())
    assert [(h["amp"], h["encoders_amp"]) for h in paper] == [("bf16", "bf16")]

"""``rsvg bench model`` on a tiny config: JSON structure, plain = optimised boxes, the plain-attention switch, FLOPs,
phase isolation, clear errors. No assertion on wall time."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from helpers.cli import set_args
from helpers.models import TINY_ZOOM
from rsvg.bench.model_bench import benchmark_model
from rsvg.bench.model_settings import (
    ALL,
    BF16_PHASE,
    BF16_TOLERANCE,
    CACHED_PHASES,
    INFERENCE_OPTIMISATIONS,
    OPTIMISATIONS,
    PHASES,
    TRAIN_BF16_PHASE,
    TRAINING_OPTIMISATIONS,
    BenchSettings,
    PhaseJob,
    keeps_freed_memory,
    phase_optimisations,
    resolve_run_config,
    resolve_settings,
)
from rsvg.bench.model_summary import ablation_summary, compare_boxes
from rsvg.bench.phase_process import run_phase
from rsvg.cli import app
from rsvg.engine.allocator import allocator_state
from rsvg.engine.precision import resolve_precision
from rsvg.errors import BenchError
from rsvg.models.transformer import MultiheadAttention, plain_attention, plain_attention_enabled

TINY = [
    "model.image_size=64",
    "model.max_tokens=12",
    "model.hidden_dim=32",
    "model.heads=4",
    "model.ffn_dim=64",
    "model.mlcm_decoder_layers=1",
    "model.visual_encoder_layers=1",
    "model.fusion_layers=1",
    "model.extra_padding=1",
    *TINY_ZOOM,
    "model.dropout=0.0",
]


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-layer, 32-wide BERT with MiniLM's uncased vocabulary, saved as a local Hugging Face folder."""
    from transformers import BertConfig, BertModel

    from rsvg.models.text_encoder import minilm_path

    folder = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    cfg = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    BertModel(cfg).save_pretrained(folder)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        src = minilm_path() / name
        if src.is_file():
            shutil.copy(src, folder / name)
    return folder


def tiny_overrides(text_folder: Path) -> list[str]:
    return [*TINY, f"model.text_encoder={text_folder}"]


@pytest.fixture(scope="module")
def bench_result(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One whole ``rsvg bench model`` run through the CLI (phases in this process), read back from its JSON."""
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    args = ["bench", "model", "--config", "configs/mgvlf_lite.yaml"]
    for item in tiny_overrides(tiny_bert):
        args += ["--set", item]
    args += ["--repeats", "1", "--warmup", "0", "--batch", "3", "--train-batch", "2", "--workers", "0"]
    args += ["--data-images", "2", "--data-samples", "4", "--matmul-size", "256", "--threads", "1"]
    args += ["--in-process", "--ablate", "--bf16", "--json", str(out)]
    threads = torch.get_num_threads()
    result = CliRunner().invoke(app, args)
    torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output
    assert "rsvg bench model" in result.output and "floor on this machine" in result.output
    assert "torch_threads" in result.output
    assert "PROJECTION, not measured" in result.output and "H100 SXM" in result.output
    return json.loads(out.read_text())


def test_json_structure(bench_result: dict) -> None:
    r = bench_result
    for key in ("machine", "settings", "model", "flops", "check", "inference", "training", "data", "floor"):
        assert key in r, key
    assert {"cpu", "cores", "torch", "torch_threads"} <= set(r["machine"])
    assert set(r["inference"]) == {"batch1", "batch3"}
    for row in r["inference"].values():
        for path in ("plain", "optimised"):
            assert row[path]["seconds"] > 0 and len(row[path]["runs"]) == 1
        assert row["speedup"] is not None and row["speedup"] > 0
    assert r["inference"]["batch3"]["optimised"]["seconds_per_image"] == pytest.approx(
        r["inference"]["batch3"]["optimised"]["seconds"] / 3
    )
    tr = r["training"]
    assert tr["batch"] == 2
    for path in ("plain", "optimised"):
        step = tr[path]
        assert step["seconds"] > 0 and step["forward_backward_s"] > 0 and step["optimizer_s"] >= 0
        assert step["peak_rss_gib"] > 0
    assert tr["projected_dior_rsvg_epoch_s"] > 0
    assert r["data"]["samples"] == 4 and r["data"]["samples_per_s"] > 0 and r["data"]["workers"] == 0
    assert r["floor"]["matmul_gflops"] > 0 and r["floor"]["backbone_channels_last_s"] > 0
    assert r["floor"]["floor_s"] > 0 and r["floor"]["matmul_floor_s"] > 0
    assert set(r["peak_rss_gib"]) >= {"infer_plain", "infer_optimised", "train_plain", "train_optimised", "data"}
    assert r["settings"]["isolated_phases"] is False and r["settings"]["amp"] == "off"
    assert r["settings"]["threads"] == 1 and r["floor"]["matmul_n"] == 256
    ablated = {f"infer_without_{o}" for o in INFERENCE_OPTIMISATIONS} | {
        f"train_without_{o}" for o in TRAINING_OPTIMISATIONS
    }
    # the lite config trains over cached maps: that step too, in fp32 and bf16
    assert set(r["phase_seconds"]) == set(PHASES) | ablated | {BF16_PHASE, TRAIN_BF16_PHASE, *CACHED_PHASES}


def test_bf16_is_timed_beside_fp32_and_checked_against_its_boxes(bench_result: dict) -> None:
    b = bench_result["bf16"]
    check = b["check"]
    assert check["tolerance"] == BF16_TOLERANCE and check["max_rel_diff_vs_fp32"] > 0  # bf16 rounds: never exact
    assert check["passed"] == (check["max_rel_diff_vs_fp32"] <= BF16_TOLERANCE)
    for key in ("batch1", "batch3"):
        row = b[key]
        assert row["bf16"] > 0
        assert (
            row["fp32"]
            == bench_result["inference"][key]["optimised"]["seconds" if key == "batch1" else "seconds_per_image"]
        )
        assert row["speedup"] == (pytest.approx(row["fp32"] / row["bf16"]) if check["passed"] else None)
    # the training step too, on the same weights and batch as the optimised fp32 one
    tr, fp32 = b["train"], bench_result["training"]["optimised"]
    assert tr["batch"] == 2 and tr["seconds_fp32"] == fp32["seconds"] and tr["seconds_bf16"] > 0
    assert tr["speedup"] == pytest.approx(tr["seconds_fp32"] / tr["seconds_bf16"])
    assert tr["forward_backward_s_bf16"] > 0 and tr["optimizer_s_bf16"] >= 0
    # the first step's loss: the same model and batch, so the two agree to bf16's rounding
    assert tr["first_loss_bf16"] == pytest.approx(tr["first_loss_fp32"], rel=0.05)
    # the step over cached maps, at the config's batch, as the trainer runs the lite config
    cached = bench_result["training_cached"]
    assert cached["batch"] == 32 and cached["fp32"]["seconds"] > 0 and cached["bf16"]["seconds"] > 0
    assert cached["speedup"] == pytest.approx(cached["fp32"]["seconds"] / cached["bf16"]["seconds"])
    assert cached["bf16"]["first_loss"] == pytest.approx(cached["fp32"]["first_loss"], rel=0.05)


def test_bf16_is_left_out_under_an_autocast_and_follows_the_flag() -> None:
    from rsvg.bench.model_settings import wants_bf16

    assert not wants_bf16(BenchSettings(bf16=True), "bf16")
    assert wants_bf16(BenchSettings(bf16=True), "off") and not wants_bf16(BenchSettings(bf16=False), "off")


def test_projection_uses_the_measured_flops_and_loader(bench_result: dict) -> None:
    p, r = bench_result["projection"], bench_result
    assert p["forward_gflops_per_image"] == pytest.approx(r["flops"]["per_image_trimmed_text_gflops"])
    assert p["expressions"] == 26_991 and p["epochs"] == 150
    # workers 0: the loader ran in the main process, which counts as one worker
    assert p["loader_samples_per_s_per_worker"] == pytest.approx(r["data"]["samples_per_s"])
    here = p["this_machine"]
    step = r["training"]["optimised"]["seconds"]
    assert here["training_gflops_per_s"] == pytest.approx(2 * p["training_gflops_per_image"] / step)
    assert here["of_matmul_rate"] == pytest.approx(here["training_gflops_per_s"] / r["floor"]["matmul_gflops"])


def test_floor_has_the_bf16_matmul_rate_beside_fp32(bench_result: dict) -> None:
    f = bench_result["floor"]  # the run times bf16 (--bf16), so the floor bounds what it can give
    assert f["matmul_bf16_gflops"] > 0
    assert f["bf16_matmul_ratio"] == pytest.approx(f["matmul_bf16_gflops"] / f["matmul_gflops"])


def test_only_the_plain_path_and_its_ablation_run_on_the_system_allocator() -> None:
    assert not keeps_freed_memory("infer_plain") and not keeps_freed_memory("train_plain")
    assert not keeps_freed_memory("train_without_keep_freed_memory")
    for name in ("infer_optimised", "train_without_fused_adamw", "floor", "data", "infer_bf16", "train_cached"):
        assert keeps_freed_memory(name), name


def test_ablation_leaves_out_each_optimisation_and_keeps_the_boxes(bench_result: dict) -> None:
    ab = bench_result["ablation"]
    assert set(ab) == set(OPTIMISATIONS)
    kept = ab["keep_freed_memory"]
    if allocator_state().kept:
        # in one process the allocator cannot be set back once a phase kept freed memory: that row says so
        assert kept["not_measured"].startswith("in-process")
        assert "inference" not in kept and "training" not in kept
    else:  # not glibc: nothing was ever kept, and the row is measured like the others
        assert "not_measured" not in kept
    for name, row in ab.items():
        assert row["what"] == OPTIMISATIONS[name]
        if "not_measured" in row:
            continue
        assert ("inference" in row) == (name in INFERENCE_OPTIMISATIONS)
        assert ("training" in row) == (name in TRAINING_OPTIMISATIONS)
        if "inference" in row:
            i = row["inference"]
            assert i["batch1_s"] > 0 and i["batch1_cost_of_leaving_out"] > 0
            assert i["max_rel_diff_vs_plain"] < 1e-4  # every partial path gives the same boxes
        if "training" in row:
            assert row["training"]["step_s"] > 0 and row["training"]["cost_of_leaving_out"] > 0
    assert bench_result["check"]["ablated_max_rel_diff"] < 1e-4  # part of the run's check
    assert bench_result["training"]["optimised"]["optimizer"] == "AdamW fused"
    assert bench_result["training"]["plain"]["optimizer"] == "AdamW for-loop"


def test_ablation_costs_are_withheld_when_the_check_failed() -> None:
    def phase(seconds: float, shift: float = 0.0) -> dict:
        boxes = [[0.1 + shift, 0.1, 0.5, 0.5]]
        row = {"seconds": seconds, "seconds_per_image": seconds, "boxes": boxes}
        return {"batch1": row, "batch2": row, "peak_rss_gib": 1.0}

    raw = {"infer_plain": phase(2.0), "infer_optimised": phase(1.0), "infer_without_fold_bn": phase(1.5, 0.1)}
    kept = ablation_summary(raw, "batch2", ok=True)["fold_bn"]["inference"]
    assert kept["batch1_cost_of_leaving_out"] == pytest.approx(1.5)
    assert kept["max_rel_diff_vs_plain"] == pytest.approx(0.2)
    withheld = ablation_summary(raw, "batch2", ok=False)["fold_bn"]["inference"]
    assert withheld["batch1_cost_of_leaving_out"] is None and withheld["batch2_cost_of_leaving_out"] is None


def test_phase_names_select_the_optimisations() -> None:
    assert phase_optimisations("infer_plain") == frozenset()
    assert phase_optimisations("train_optimised") == ALL
    assert phase_optimisations("infer_without_fold_bn") == ALL - {"fold_bn"}
    with pytest.raises(ValueError, match="unknown phase"):
        phase_optimisations("infer_without_magic")


def test_plain_and_optimised_agree(bench_result: dict) -> None:
    c = bench_result["check"]
    assert c["passed"] and c["same_weights"]
    assert c["max_rel_diff"] < 1e-4
    assert c["batch1"]["max_rel_diff"] < 1e-4 and c["batch3"]["max_rel_diff"] < 1e-4
    b1 = bench_result["inference"]["batch1"]
    # the plain path keeps the padding to Nt, the optimised one trims to the longest query of the batch
    assert b1["plain"]["text_tokens"] == 12
    assert b1["optimised"]["text_tokens"] < 12
    paths = bench_result["paths"]
    assert paths["plain"]["text_encoder_attention"] == "eager"
    assert paths["optimised"]["text_encoder_attention"] == "sdpa"


def test_flops_are_counted(bench_result: dict) -> None:
    f = bench_result["flops"]
    assert f["per_image_gflops"] > 0 and f["backbone_gflops"] > 0 and f["text_encoder_gflops"] > 0
    assert f["per_image_trimmed_text_gflops"] < f["per_image_gflops"]  # fewer text tokens, fewer FLOPs
    assert f["backbone_gflops"] + f["text_encoder_gflops"] < f["per_image_gflops"]
    assert bench_result["model"]["params"]["total"] > bench_result["model"]["params"]["trainable"] > 0


def test_plain_attention_switch_changes_the_path_not_the_result(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    fused = torch.nn.functional.scaled_dot_product_attention

    def counting(*args, **kwargs):
        calls.append(1)
        return fused(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", counting)
    torch.manual_seed(0)
    attn = MultiheadAttention(32, 4).eval()
    q, kv = torch.randn(2, 5, 32), torch.randn(2, 7, 32)
    mask = torch.zeros(2, 7, dtype=torch.bool)
    mask[0, 4:] = True
    out_fused, _ = attn(q, kv, kv, mask)
    assert len(calls) == 1
    assert not plain_attention_enabled()
    with plain_attention():
        assert plain_attention_enabled()
        out_plain, weights = attn(q, kv, kv, mask)
    assert len(calls) == 1  # the explicit softmax path does not call the fused kernel
    assert weights is None
    assert not plain_attention_enabled()  # restored
    torch.testing.assert_close(out_plain, out_fused, rtol=1e-5, atol=1e-6)


def test_compare_boxes() -> None:
    d = compare_boxes([[0.1, 0.2, 0.5, 0.8]], [[0.1, 0.2, 0.5, 0.8 + 8e-6]])
    assert d["max_abs_diff"] == pytest.approx(8e-6, rel=1e-3)
    assert d["max_rel_diff"] == pytest.approx(1e-5, rel=1e-3)


def test_paper_config_needs_random_text_for_a_missing_text_folder() -> None:
    with pytest.raises(BenchError, match="--random-text"):
        resolve_run_config(BenchSettings(config="configs/mgvlf_dior.yaml"))
    cfg, notes = resolve_run_config(BenchSettings(config="configs/mgvlf_dior.yaml", random_text=True))
    assert cfg.model.text_encoder == "bert-base-random"
    assert cfg.model.pretrained_backbone is False and cfg.model.backbone_weights is None
    assert any("bert-base-random" in n for n in notes)
    batch, train_batch, amp, workers = resolve_settings(BenchSettings(), cfg)
    assert (batch, train_batch, amp, workers) == (8, 2, "off", cfg.data.workers)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on machines without CUDA")
def test_cuda_without_a_gpu_is_a_clear_error() -> None:
    result = CliRunner().invoke(
        app, ["bench", "model", "-c", "configs/mgvlf_lite.yaml", "--device", "cuda", "--in-process"]
    )
    assert result.exit_code == 2
    assert "CUDA is not available" in result.output and "--device cpu" in result.output


def test_a_phase_runs_in_its_own_process(tiny_bert: Path) -> None:
    settings = BenchSettings(
        config="configs/mgvlf_lite.yaml",
        overrides=tiny_overrides(tiny_bert),
        repeats=1,
        data_images=1,
        data_samples=2,
        workers=0,
        isolate=True,
    )
    cfg, _ = resolve_run_config(settings)
    job = PhaseJob(settings, cfg.to_dict(), batch=2, train_batch=2, amp="off", workers=0)
    out = run_phase("data", job)
    assert out["pid"] != os.getpid()
    assert out["samples"] == 2 and out["peak_rss_gib"] > 0


def test_bench_from_a_checkpoint(tiny_bert: Path, tmp_path: Path) -> None:
    from rsvg.config import load_config
    from rsvg.engine.checkpoint import checkpoint_meta, model_text_files, save_checkpoint
    from rsvg.models.build import build_model

    cfg = load_config("configs/mgvlf_lite.yaml", [*tiny_overrides(tiny_bert), "model.pretrained_backbone=false"])
    torch.manual_seed(3)
    model = build_model(cfg.model)
    folder = save_checkpoint(tmp_path / "best", model, checkpoint_meta(model, cfg, {}), model_text_files(model))
    settings = BenchSettings(
        checkpoint=str(folder),
        threads=1,
        repeats=1,
        warmup=0,
        batch=2,
        skip_train=True,
        workers=0,
        data_images=1,
        data_samples=2,
        matmul_n=64,
        isolate=False,
    )
    threads = torch.get_num_threads()
    try:
        result = benchmark_model(settings)
    finally:
        torch.set_num_threads(threads)
    assert result["training"] is None and "train_plain" not in result["peak_rss_gib"]
    assert result["check"]["passed"] and result["check"]["same_weights"]
    assert result["model"]["image_size"] == 64 and result["model"]["max_tokens"] == 12
    assert any("checkpoint" in note for note in result["settings"]["notes"])
    json.dumps(result)  # JSON-ready


def test_bench_features_compares_the_cache_batch_with_the_baseline(tmp_path: Path) -> None:
    out = tmp_path / "features.json"
    args = [
        "bench",
        "features",
        "-c",
        "configs/mgvlf_lite.yaml",
        "--set",
        "model.image_size=64",
        *set_args(TINY_ZOOM),
    ]
    args += ["--set", "model.pretrained_backbone=false", "--images", "4", "--repeats", "1", "--json", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    r = json.loads(out.read_text())["results"]
    assert r["cache_batch"] == 1 and r["baseline_batch"] == 64 and r["image_size"] == 64  # one image at a time on CPU
    assert r["cache_ms_per_image"] > 0 and r["baseline_ms_per_image"] > 0
    assert r["speedup"] == pytest.approx(r["baseline_ms_per_image"] / r["cache_ms_per_image"])
    # a zoom config: the second look's crops too, a few at a time on a CPU against all at once
    assert r["crops_at_once"] == 2 and r["crops"] == 4 and r["crop_ms"] > 0 and r["crops_all_at_once_ms"] > 0
    assert r["crop_speedup"] == pytest.approx(r["crops_all_at_once_ms"] / r["crop_ms"])
    # bf16 beside fp32 where this machine has native bf16 units (what train.amp auto computes the cache in)
    if resolve_precision("auto", "cpu").name == "bf16":
        assert r["cache_bf16_ms_per_image"] > 0 and 0 < r["bf16_rel_diff"] < 0.2
        assert r["bf16_speedup"] == pytest.approx(r["cache_ms_per_image"] / r["cache_bf16_ms_per_image"])
    else:
        assert "cache_bf16_ms_per_image" not in r and "bf16_speedup" not in r


def test_bench_features_names_a_missing_gpu_and_a_missing_config() -> None:
    result = CliRunner().invoke(app, ["bench", "features", "--device", "cuda"])
    if not torch.cuda.is_available():
        assert result.exit_code == 2 and "CUDA is not available" in result.output
    result = CliRunner().invoke(app, ["bench", "features", "-c", "no/such.yaml"])
    assert result.exit_code == 2 and "no/such.yaml" in result.output


#: other families' configs at test size: LBYL-Net with its LSTM (a vocabulary fitted to the benchmark's queries)
#: and BGR statistics, VLTVG (its decoder stages take parameters as inputs, which the FLOP counter tracks) and ZSGNet
OTHER_FAMILIES = {
    "configs/lbyl_lstm.yaml": [
        "model.backbone=efficientnet_lite0",
        "model.image_size=64",
        "model.max_tokens=12",
        "model.emb_size=16",
        "model.out_dim=16",
        "model.ctx_dim=8",
    ],
    "configs/vltvg_lite.yaml": [
        "model.pretrained_backbone=false",
        "model.image_size=96",
        "model.hidden_dim=32",
        "model.ffn_dim=64",
        "model.decoder_stages=2",
    ],
    # ZSGNet at an input no feature cache can fold (its paper config's 300 px is not a multiple of 32), without a
    # word-vector file
    "configs/zsgnet_r50.yaml": [
        "model.backbone=efficientnet_lite0",
        "model.image_size=100",
        "model.max_tokens=12",
        "model.emb_dim=8",
        "model.lstm_dim=4",
        "model.fpn_dim=8",
        "model.head_convs=1",
    ],
}


@pytest.mark.parametrize("config", list(OTHER_FAMILIES))
def test_bench_model_on_other_families(config: str, tmp_path: Path) -> None:
    # every phase, the data phase included, reads the model's own input side
    out = tmp_path / "bench.json"
    args = ["bench", "model", "--config", config, *set_args(OTHER_FAMILIES[config])]
    args += ["--repeats", "1", "--warmup", "0", "--batch", "2", "--train-batch", "2", "--workers", "0"]
    args += ["--data-images", "2", "--data-samples", "4", "--matmul-size", "64", "--threads", "1"]
    args += ["--in-process", "--json", str(out)]
    threads = torch.get_num_threads()
    result = CliRunner().invoke(app, args)
    torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output
    r = json.loads(out.read_text())
    assert r["check"]["passed"] and r["check"]["same_weights"] and r["flops"]["per_image_gflops"] > 0
    assert r["data"]["samples"] == 4 and r["training"]["optimised"]["seconds"] > 0
    notes = r["settings"]["notes"]
    assert sum(note.startswith("LSTM vocabulary: the ") for note in notes) == ("lstm" in config or "zsgnet" in config)
    assert sum(note.startswith("word vectors: none named") for note in notes) == ("zsgnet" in config)

"""Frozen-backbone maps kept on disk (``train.feature_cache_dir``): a second run loads them and trains exactly as
the first; a stored set that is not this model's is recomputed; damaged files read as absent; writes are whole."""

from __future__ import annotations

import torch
from safetensors.torch import load_file

from helpers.models import model_dataset, tiny_config
from rsvg.engine.feature_store import feature_key, load_features, matches, save_features
from rsvg.engine.trainer import train
from rsvg.models.build import build_model

FROZEN = ["model.freeze_backbone=true", "model.pretrained_backbone=true", "train.epochs=1", "train.batch_size=2",
          "train.save_every_epochs=1000"]  # fmt: skip


def _weights(run) -> dict[str, torch.Tensor]:
    return load_file(str(run / "last" / "model.safetensors"))


def _assert_same(a, b) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_a_second_run_loads_the_stored_maps_and_trains_exactly_as_the_first(official_dataset, tmp_path, capsys):
    store = tmp_path / "store"
    train(tiny_config(official_dataset, *FROZEN, f"train.feature_cache_dir={store}"), tmp_path / "a")
    first = capsys.readouterr().out
    assert "kept in" in first and len(list(store.glob("features-*.pt"))) == 1
    train(tiny_config(official_dataset, *FROZEN, f"train.feature_cache_dir={store}"), tmp_path / "b")
    assert "loaded the frozen backbone's features of" in capsys.readouterr().out
    # and a run without the folder computes the same maps in memory: all three trained alike (same machine)
    train(tiny_config(official_dataset, *FROZEN), tmp_path / "c")
    _assert_same(_weights(tmp_path / "a"), _weights(tmp_path / "b"))
    _assert_same(_weights(tmp_path / "a"), _weights(tmp_path / "c"))


def test_stored_maps_that_are_not_this_models_are_recomputed(official_dataset, tmp_path, capsys):
    store = tmp_path / "store"
    cfg = tiny_config(official_dataset, *FROZEN, f"train.feature_cache_dir={store}")
    train(cfg, tmp_path / "a")
    (path,) = store.glob("features-*.pt")
    key = path.stem.removeprefix("features-")
    # the same key holding other maps (as another family's reading of the same backbone would): not used
    other = {i: m * 3 + 1 for i, m in load_features(store, key).items()}
    save_features(store, key, other)
    capsys.readouterr()
    train(cfg, tmp_path / "b")
    out = capsys.readouterr().out
    assert "differ from this model's: recomputed" in out and "kept in" in out
    _assert_same(_weights(tmp_path / "a"), _weights(tmp_path / "b"))
    # and the file now holds this model's maps again
    stored = load_features(store, key)
    assert all(not matches(stored[i], other[i]) for i in other)


def test_the_key_follows_the_images_and_the_weights_and_bad_files_read_as_absent(official_dataset, tmp_path):
    cfg = tiny_config(official_dataset, "model.freeze_backbone=true", "model.pretrained_backbone=true")
    model = build_model(cfg.model)
    samples = model_dataset(official_dataset, "train", model).samples
    key = feature_key(model, samples)
    assert feature_key(build_model(cfg.model), samples) == key  # the same weights: the same key
    assert feature_key(model, samples[:1]) != key  # other images
    with torch.no_grad():
        next(model.backbone.parameters()).add_(1e-3)
    assert feature_key(model, samples) != key  # other weights

    maps = {"a": torch.randn(4, 2, 2).half(), "b": torch.randn(4, 2, 2).half()}
    store = tmp_path / "store"
    path = save_features(store, "k", maps)
    assert [p.name for p in store.iterdir()] == [path.name]  # no temporary file left
    loaded = load_features(store, "k")
    assert loaded.keys() == maps.keys() and all(torch.equal(loaded[i], maps[i]) for i in maps)
    assert load_features(store, "other") is None
    path.write_bytes(b"not a tensor file")
    assert load_features(store, "k") is None


def test_matches_tolerates_rounding_not_other_maps():
    a = torch.randn(8, 4, 4)
    assert matches(a.half(), a)  # float16 storage
    assert not matches(a, a * 1.1) and not matches(a, a[:4])

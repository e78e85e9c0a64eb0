"""``rsvg benchmark``: a two-row benchmark end to end on a dataset the test builds, reuse and resume, a failing row
that does not stop the others, and the paper's figures only on DIOR-RSVG's official split."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from helpers.datasets import make_official_dataset
from rsvg.benchmark import runner
from rsvg.benchmark.plan import OFFICIAL_SIZES, is_official_split, plan_rows
from rsvg.benchmark.rows import ROWS, rows_named
from rsvg.benchmark.runner import RowResult
from rsvg.benchmark.table import build_table, write_table
from rsvg.cli import app
from rsvg.metrics import METRIC_NAMES

# every row small: one epoch on the six samples at 128 px
TINY = ["model.image_size=128", "train.epochs=1", "train.batch_size=2", "train.eval_batch_size=2",
        "train.warmup_steps=0"]  # fmt: skip


def bench_args(data: Path, out: Path, methods: str = "faoa_bert,mgvlf") -> list[str]:
    sets = [a for s in TINY for a in ("--set", s)]
    return ["benchmark", str(data), "--out", str(out), "--methods", methods, "--variant", "lite", *sets]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_official_dataset(tmp_path_factory.mktemp("bench") / "data")


@pytest.fixture(scope="module")
def first_run(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "out"
    res = CliRunner().invoke(app, bench_args(data, out))
    return out, res


def test_every_table_ii_line_has_a_row():
    names = [r.name for r in ROWS]
    assert names[:11] == ["zsgnet_vgg16", "zsgnet_r50", "faoa_nocoord", "faoa_bert", "faoa_lstm", "resc_bert",
                          "lbyl_lstm", "lbyl_bert", "transvg", "vltvg_r50", "vltvg_r101"]  # fmt: skip
    assert names[11:] == ["mgvlf", "baseline_a"]
    # every config a row names exists, and every row has the paper's figures
    for row in ROWS:
        assert Path(row.paper_config).is_file() and (row.lite_config is None or Path(row.lite_config).is_file())
        assert row.lite_config is not None or row.lite_note
        assert row.paper["Pr@0.5"] > 40
    assert [r.name for r in rows_named("mgvlf, faoa_bert")] == ["faoa_bert", "mgvlf"]  # Table II's order
    # the encoders printed are those the variant trains with
    lbyl_lstm = rows_named("lbyl_lstm")[0]
    assert lbyl_lstm.encoders("paper") == ("DarkNet-53", "LSTM")
    assert lbyl_lstm.encoders("lite") == ("EfficientNet-Lite0", "LSTM")
    assert rows_named("mgvlf")[0].encoders("lite") == ("EfficientNet-Lite0", "MiniLM")
    assert rows_named("vltvg_r101")[0].encoders("lite") == ("ResNet-101", "BERT")  # not run: the method's own
    with pytest.raises(ValueError, match="unknown nope; known: all, zsgnet_vgg16"):
        rows_named("faoa_bert,nope")


def test_the_dry_run_prints_every_rows_commands_and_runs_nothing(data, tmp_path):
    out = tmp_path / "out"
    res = CliRunner().invoke(app, [*bench_args(data, out, "all"), "--dry-run", "--nproc-per-node", "2"])
    assert res.exit_code == 0, res.output
    assert "13 rows, variant lite" in res.output
    assert "zsgnet_vgg16: not run: no lite variant" in res.output
    assert (f"torchrun --nproc_per_node 2 -m rsvg.cli train -c configs/faoa_lite.yaml --data {data} --out "
            f"{out}/rows/faoa_bert/run --set train.feature_cache_dir={out}/feature_cache --set model.image_size=128"
            ) in res.output  # fmt: skip
    assert f"rsvg eval --checkpoint {out}/rows/mgvlf/run/best --data {data} --split test" in res.output
    assert not out.exists()


def test_a_bad_option_is_refused_before_anything_trains(data, tmp_path):
    res = CliRunner().invoke(app, [*bench_args(data, tmp_path / "out"), "--set", "model.nope=1"])
    assert res.exit_code == 2 and "row faoa_bert (configs/faoa_lite.yaml)" in res.output and "nope" in res.output
    res = CliRunner().invoke(app, [*bench_args(data, tmp_path / "out"), "--variant", "huge"])
    assert res.exit_code != 0 and "paper or lite" in res.output


def test_a_two_row_benchmark_end_to_end(first_run):
    out, res = first_run
    assert res.exit_code == 0, res.output
    table = json.loads((out / "table.json").read_text())
    rows = {r["name"]: r for r in table["rows"]}
    assert list(rows) == ["faoa_bert", "mgvlf"] and not table["official_split"]
    for row in rows.values():
        assert row["status"] == "done" and set(row["metrics"]) == set(METRIC_NAMES)
        assert row["parameters"] > 1e6 and row["train_minutes"] is not None and row["eval_ms_per_expression"] > 0
        assert "paper" not in row  # not DIOR-RSVG's official split: no paper column
        # the metrics are rsvg eval's on the test split (two expressions)
        report = json.loads((out / "rows" / row["name"] / "eval" / "metrics.json").read_text())
        assert report["split"] == "test" and report["overall"]["count"] == 2
        assert row["metrics"] == report["overall"]["values"]
    vs = rows["faoa_bert"]["vs_mgvlf"]
    assert 0 <= vs["p"] <= 1 and vs["right_only_row"] + vs["right_only_mgvlf"] <= 2
    assert set(table["query_blind"]) == {"blind pick", "prior box"}
    md = (out / "table.md").read_text()
    assert "| FAOA | ICCV'19 | EfficientNet-Lite0 | MiniLM |" in md and "paper Pr@0.5" not in md and "blind pick" in md
    page = (out / "table.html").read_text()
    assert "<svg" in page and "not DIOR-RSVG's official split" in page and "faoa_bert" in page
    assert "[2/2] mgvlf: done" in res.output
    # the progress table before each row: what is finished, what runs, and (after the first) an estimate
    assert "benchmark: 0 of 2 rows finished" in res.output and "estimate after the first row" in res.output
    assert "benchmark: 1 of 2 rows finished" in res.output and "min left" in res.output
    # each row kept its frozen backbone's maps in the shared folder (two families: two sets)
    assert len(list((out / "feature_cache").glob("features-*.pt"))) == 2
    assert f"kept in {out / 'feature_cache'}" in (out / "rows" / "faoa_bert" / "train.log").read_text()


def test_a_second_run_reuses_every_row(first_run, data):
    out, _ = first_run
    before = (out / "rows" / "mgvlf" / "eval" / "metrics.json").stat().st_mtime_ns
    res = CliRunner().invoke(app, bench_args(data, out))
    assert res.exit_code == 0, res.output
    assert "[1/2] faoa_bert: reused" in res.output and "[2/2] mgvlf: reused" in res.output
    assert (out / "rows" / "mgvlf" / "eval" / "metrics.json").stat().st_mtime_ns == before
    # a changed option is another key: that row runs again
    key = json.loads((out / "rows" / "mgvlf" / "row.json").read_text())["key"]
    plans = plan_rows(rows_named("mgvlf"), "lite", data, out, [*TINY, "train.lr=1e-4"])
    assert plans[0].key != key
    # a machine whose native bf16 units train.amp auto uses is another key (the row computes other numbers there)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("rsvg.engine.amp.cpu_bf16_flags", lambda cpuinfo=None: ["avx512_bf16"])
        assert plan_rows(rows_named("mgvlf"), "lite", data, out, TINY)[0].key != key
    assert plan_rows(rows_named("mgvlf"), "lite", data, out, TINY)[0].key == key
    # where the shared maps are kept is not part of a row's key
    moved = plan_rows(rows_named("mgvlf"), "lite", data, out.parent / "elsewhere", TINY)
    assert moved[0].key == key and f"train.feature_cache_dir={out.parent / 'elsewhere' / 'feature_cache'}" in (
        moved[0].overrides
    )


def test_an_interrupted_row_resumes_and_a_failed_row_does_not_stop_the_others(first_run, data, tmp_path, monkeypatch):
    out, _ = first_run
    # the mgvlf row as if interrupted after its training's last checkpoint: it resumes (nothing left to train)
    state_file = out / "rows" / "mgvlf" / "row.json"
    state = json.loads(state_file.read_text())
    state_file.write_text(json.dumps({**state, "status": "running"}))
    # and faoa_bert's training fails
    real = runner.rsvg_argv

    def failing(args, nproc_per_node=1, python=None):
        if args[0] == "train" and "faoa_bert" in " ".join(args):
            args = [*args, "--set", "train.epochs=0"]
        return real(args, nproc_per_node, python)

    monkeypatch.setattr(runner, "rsvg_argv", failing)
    (out / "rows" / "faoa_bert" / "row.json").unlink()  # faoa_bert runs again
    res = CliRunner().invoke(app, bench_args(data, out))
    assert res.exit_code == 1
    assert "faoa_bert: failed, rsvg train exited with 2" in res.output
    assert "mgvlf: done" in res.output and "failed rows" in res.output
    log = (out / "rows" / "mgvlf" / "train.log").read_text()
    assert "--resume" in log
    table = json.loads((out / "table.json").read_text())
    failed = next(r for r in table["rows"] if r["name"] == "faoa_bert")
    assert failed["status"] == "failed" and "train.epochs" in failed["error"]
    assert "failed: rsvg train exited with 2" in (out / "table.md").read_text()


def _official_splits(root: Path) -> Path:
    start = 0
    root.mkdir(parents=True)
    for split, size in OFFICIAL_SIZES.items():
        (root / f"{split}.txt").write_text("".join(f"{i}\n" for i in range(start, start + size)))
        start += size
    return root


def test_the_paper_columns_appear_only_on_the_official_split(tmp_path):
    official = _official_splits(tmp_path / "dior_rsvg")
    assert is_official_split(official)
    other = _official_splits(tmp_path / "other")
    (other / "test.txt").write_text("".join(f"{i}\n" for i in range(30_820, 38_319)))  # one index short
    assert not is_official_split(other) and not is_official_split(tmp_path / "missing")
    plans = plan_rows(rows_named("mgvlf,baseline_a"), "lite", official, tmp_path / "out", TINY)
    metrics = dict.fromkeys(METRIC_NAMES, 50.0)
    results = [RowResult("mgvlf", "done", metrics=metrics, samples=10), RowResult("baseline_a", "failed", error="x")]
    for on in (True, False):
        table = build_table(plans, results, {"blind pick": dict.fromkeys(METRIC_NAMES, 10.0)}, official=on)
        mgvlf = table["rows"][0]
        assert ("paper" in mgvlf) is on
        if on:
            assert mgvlf["difference"]["Pr@0.5"] == round(50.0 - 76.78, 2)
            assert table["rows"][1]["paper"] == {"Pr@0.5": 72.41} and table["rows"][1]["difference"] == {}
        write_table(tmp_path / str(on), table, "t")
        md = (tmp_path / str(on) / "table.md").read_text()
        assert ("76.78 (-26.78)" in md) is on and ("paper Pr@0.5" in md) is on


def test_the_estimate_is_the_mean_time_of_the_rows_run_times_the_rows_left(data, tmp_path):
    from rsvg.benchmark.progress import estimate_left, progress_table

    plans = plan_rows(rows_named("zsgnet_vgg16,faoa_bert,resc_bert,mgvlf"), "lite", data, tmp_path, TINY)
    results = {"zsgnet_vgg16": RowResult("zsgnet_vgg16", "skipped"), "faoa_bert": RowResult("faoa_bert", "done")}
    assert estimate_left(plans, results, []) is None
    assert estimate_left(plans, results, [60.0, 120.0]) == 2 * 90.0  # resc_bert and mgvlf left
    assert estimate_left(plans, {**results, "resc_bert": results["faoa_bert"], "mgvlf": results["faoa_bert"]},
                         [1.0]) == 0.0  # fmt: skip
    table = progress_table(plans, results, "resc_bert", 90.0, 180.0)
    assert table.row_count == 3  # the rows that run; zsgnet_vgg16 has no lite variant
    assert "1 of 3 rows finished, 1.5 min spent, about 3 min left" in str(table.title)


def test_weights_folder_gives_each_paper_row_its_own_files(data, tmp_path):
    weights = tmp_path / "weights"
    weights.mkdir()
    for name in ("yolov3.weights", "detr-r50-e632da11.pth"):
        (weights / name).write_bytes(b"x")
    (weights / "bert-base-uncased").mkdir()
    plans = plan_rows(rows_named("faoa_lstm,resc_bert,mgvlf"), "paper", data, tmp_path / "out", [], 0, weights)
    options = {p.row.name: [o for o in p.overrides if o.startswith(("model.backbone_weights", "model.text_encoder"))]
               for p in plans}  # fmt: skip
    assert options == {
        "faoa_lstm": [f"model.backbone_weights={weights / 'yolov3.weights'}"],
        "resc_bert": [f"model.backbone_weights={weights / 'yolov3.weights'}",
                      f"model.text_encoder={weights / 'bert-base-uncased'}"],
        "mgvlf": [f"model.backbone_weights={weights / 'detr-r50-e632da11.pth'}",
                  f"model.text_encoder={weights / 'bert-base-uncased'}"],
    }  # fmt: skip
    # every missing file named at once, with what it is; nothing planned
    with pytest.raises(ValueError) as err:
        plan_rows(rows_named("zsgnet_r50,vltvg_r101"), "paper", data, tmp_path / "out", [], 0, weights)
    lines = str(err.value).splitlines()
    assert lines[0].startswith(f"--weights {weights} lacks 3 pretrained files")
    assert lines[1:] == [
        "  resnet50-0676ba61.pth: torchvision's ResNet-50 ImageNet weights; read by zsgnet_r50",
        "  glove.840B.300d.txt: GloVe's 840B 300-d word vectors (text); read by zsgnet_r50",
        "  detr-r101-2c7b67e5.pth: DETR's detr-r101 checkpoint; read by vltvg_r101",
    ]
    with pytest.raises(ValueError, match="--weights names the paper variant"):
        plan_rows(rows_named("mgvlf"), "lite", data, tmp_path / "out", [], 0, weights)
    # every paper row names the files it reads
    assert all(row.weights for row in ROWS)

"""The demo pipeline: every step runs, a second run reuses, a changed option re-runs only what depends on it,
and the report opens in a real headless browser with its tables and images."""

import json
import re
import shutil
import subprocess

import pytest
from rich.console import Console

from helpers.models import TINY_MODEL
from rsvg.demo.baselines import blind_pick_baseline, prior_box_baseline
from rsvg.demo.pipeline import Demo, DemoOptions
from rsvg.demo.report import format_seconds, loss_terms

TINY = [x for x in TINY_MODEL if not x.startswith("data.")] + ["model.freeze_backbone=true", "train.batch_size=8"]


def run_demo(out, **kw):
    opts = DemoOptions(out=out, images=12, size=256, epochs=1, overrides=TINY, workers=1, gallery=4, **kw)
    demo = Demo(opts, Console(quiet=True))
    report = demo.run_all()
    return demo, report


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    demo, report = run_demo(out)
    return out, demo, report


def test_every_step_runs_and_writes(demo_run):
    out, demo, report = demo_run
    assert set(demo.result.steps) == {"synth", "build", "check", "stats", "train", "eval", "gallery"}
    assert not any(s["reused"] for s in demo.result.steps.values())
    assert (out / "run" / "best" / "model.safetensors").is_file()
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    assert metrics["overall"]["count"] > 0
    gallery = json.loads((out / "gallery" / "gallery.json").read_text())
    assert 1 <= len(gallery) <= 4 and all((out / "gallery" / g["file"]).is_file() for g in gallery)
    text = report.read_text()
    for needle in ("Pr@0.5", "cumIoU", "prior box", "blind pick", "Per category", "data:image/png;base64,"):
        assert needle in text
    assert "rsvg train -c configs/mgvlf_lite.yaml" in text  # the command that re-runs the step alone
    # the lite config looks twice: each test prediction says whether its box is the second look's, and the report
    # counts them
    rows = [json.loads(line) for line in (out / "eval" / "predictions.jsonl").read_text().splitlines()]
    assert all(isinstance(r["second_look"], bool) for r in rows)
    looked = sum(r["second_look"] for r in rows)
    assert "model.stages.zoom" in text and (f"gave {looked} of the {len(rows)} test boxes" in text or looked == 0)
    # and ranks the first look's best cells again: each row says whether the ranking changed the answer
    assert all(isinstance(r["reranked"], bool) for r in rows)
    reranked = sum(r["reranked"] for r in rows)
    assert "model.stages.rank" in text and (f"best cell for {reranked} of the {len(rows)}" in text or reranked == 0)
    # and refines every answer's box: each row keeps the IoU before, and the report gives Pr@0.5 before and after
    assert all(0 <= r["unrefined_iou"] <= 1 for r in rows)
    before = 100 * sum(r["unrefined_iou"] > 0.5 for r in rows) / len(rows)
    assert "model.stages.refine" in text and f"took Pr@0.5 from {before:.2f} %" in text


def step_cell(report_text: str, step: str) -> str:
    """The time column of one step's row in the report's steps table."""
    match = re.search(rf"<tr><td>{step}</td><td>(.*?)</td>", report_text)
    assert match, step
    return match.group(1)


def test_the_report_prints_each_steps_measured_time_once(demo_run):
    out, demo, report = demo_run
    text = report.read_text()
    train = demo.result.steps["train"]
    # the headline's training time is the steps table's, both the train step's measured wall time
    headline = re.search(r"Training took (.*?) \((\d+) epochs?\)\.", text)
    assert headline, text[:2000]
    assert headline.group(1) == step_cell(text, "train") == format_seconds(train["seconds"])
    assert int(headline.group(2)) == len(json.loads((out / "run" / "history.json").read_text()))
    # the check step is timed like every other step, and a fast step does not print as 0.0 s
    assert demo.result.steps["check"]["seconds"] > 0
    assert step_cell(text, "check") == format_seconds(demo.result.steps["check"]["seconds"]) != "0.0 s"
    # each stamp keeps its step's time, for the report of a run that reuses the step
    stamp = json.loads((out / ".stamps" / "train.json").read_text())
    assert stamp["seconds"] == train["seconds"]


def test_the_report_explains_its_pictures(demo_run):
    out, _, report = demo_run
    text = report.read_text()
    # the curve's series are the history's own loss terms (the trainer's, "loss" the weighted sum first)
    history = json.loads((out / "run" / "history.json").read_text())
    terms = loss_terms(history)
    assert terms[0] == "loss" and {"l1", "giou"} <= set(terms)
    assert all(isinstance(history[0][t], float) for t in terms)
    # the gallery's legend names the yellow first-look box beside green truth and red answer
    legend = text[text.index("<h2>Gallery</h2>") : text.index("<figure>")]
    for words in ("yellow", "first look", "green", "truth", "red", "answer"):
        assert words in legend


def test_test_step_on_the_trainings_cached_features_equals_evaluation_from_the_images(demo_run):
    """The demo's test step reuses the backbone maps the training cached; `rsvg eval` computes them from the
    images: the same predictions up to the cache's float16 rounding."""
    import numpy as np

    from rsvg.data.dataset import RSVGDataset
    from rsvg.engine.evaluate import eval_loader, predict
    from rsvg.inference import Grounder

    out, demo, _ = demo_run
    g = Grounder.from_checkpoint(out / "run" / "best")
    ds = g.dataset(out / "rsvg", "test")
    # the training ran in this process, so the test step used its maps for every test image that was in train/val
    seen = {s.image_id for split in ("train", "val") for s in RSVGDataset(out / "rsvg", split, image_size=64).samples}
    expected = len({s.image_id for s in ds.samples} & seen)
    stamp = json.loads((out / ".stamps" / "eval.json").read_text())
    assert stamp["images_on_training_maps"] == expected > 0 and demo._image_features is None  # then let go
    direct = predict(g.model, eval_loader(ds, 16, 0, g.device), g.device, image_size=g.image_size)
    demo_rows = [json.loads(line) for line in (out / "eval" / "predictions.jsonl").read_text().splitlines()]
    assert [r["index"] for r in demo_rows] == [r["index"] for r in direct] and len(direct) > 0
    diff = np.abs(np.array([r["pred_box"] for r in demo_rows]) - np.array([r["pred_box"] for r in direct]))
    assert diff.max() < 0.5, diff.max()  # pixels of a 256-px scene


def test_second_run_reuses_and_changed_option_reruns_dependents(demo_run, tmp_path):
    out, first, _ = demo_run
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    # the same options again: everything is reused ...
    demo, report = run_demo(copy)
    reused = {k for k, s in demo.result.steps.items() if s["reused"]}
    assert reused == {"synth", "build", "stats", "train", "eval", "gallery"}
    # ... and the report gives the time each reused step took when it ran, the same in headline and table
    took = format_seconds(first.result.steps["train"]["seconds"])
    assert demo.result.steps["train"]["ran_seconds"] == first.result.steps["train"]["seconds"]
    text = report.read_text()
    assert f"Training took {took} in an earlier run, reused here" in text
    assert step_cell(text, "train") == f"reused (took {took})"
    # ... and one more epoch re-runs training and what follows it, not the data steps
    opts = DemoOptions(out=copy, images=12, size=256, epochs=2, overrides=TINY, workers=1, gallery=4)
    demo = Demo(opts, Console(quiet=True))
    demo.run_all()
    reused = {k for k, s in demo.result.steps.items() if s["reused"]}
    assert reused == {"synth", "build", "stats"}
    assert len(json.loads((copy / "run" / "history.json").read_text())) == 2


def test_baselines_are_computed_on_the_test_split(demo_run):
    out, _, _ = demo_run
    prior = prior_box_baseline(out / "rsvg")
    blind = blind_pick_baseline(out / "rsvg")
    for values in (prior, blind):
        assert set(values) == {"Pr@0.5", "Pr@0.6", "Pr@0.7", "Pr@0.8", "Pr@0.9", "meanIoU", "cumIoU"}
        assert all(0 <= v <= 100 for v in values.values())
    # picking one of the image's own objects beats a fixed box, and is below 100 % (images hold several objects)
    assert 0 < blind["Pr@0.5"] < 100
    # on another split: the same computation over that split's expressions (the validation bar of training curves)
    val = blind_pick_baseline(out / "rsvg", "val")
    assert 0 < val["Pr@0.5"] < 100 and val != blind
    with pytest.raises(ValueError, match="split must be one of"):
        blind_pick_baseline(out / "rsvg", "no_such_split")


def test_report_opens_in_headless_chromium(demo_run, tmp_path):
    _, _, report = demo_run
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no chromium: apt-get install chromium (make test does this as root)")
    proc = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            report.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    dom = proc.stdout
    assert "<table>" in dom and dom.count("<table>") >= 3, proc.stderr[-2000:]
    assert dom.count("data:image/png;base64,") >= 4  # curve, gallery, dataset figures
    assert "Test Pr@0.5" in dom

"""The demo's self-contained HTML report: metrics, baselines, training curve, dataset figures, gallery."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

from rsvg.data.categories import NATURAL_NAMES
from rsvg.data.xmlio import atomic_write_text
from rsvg.engine.evaluate import metrics_from_rows
from rsvg.metrics import METRIC_NAMES
from rsvg.models.stages import result_notes

CSS = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1200px;color:#222;padding:0 1rem}
h1{margin-bottom:.2rem} table{border-collapse:collapse;margin:.5rem 0 1.5rem}
td,th{border:1px solid #ccc;padding:.25rem .6rem;text-align:right} th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left} .headline{font-size:1.3rem;background:#eef6ee;padding:.8rem;
border-radius:6px} figure{display:inline-block;margin:.4rem;width:360px;vertical-align:top}
figure img{width:100%;border:1px solid #ccc} figcaption{font-size:.85rem} .bad{color:#b00} .good{color:#070}
img.wide{max-width:100%;border:1px solid #ddd} code{background:#f5f5f5;padding:0 .2rem}
"""


def _img(path: Path, cls: str = "") -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img class="{cls}" src="data:image/png;base64,{data}" alt="{html.escape(Path(path).name)}">'


def _metric_row(name: str, values: dict[str, float], count: int | str = "") -> str:
    cells = "".join(f"<td>{values[m]:.2f}</td>" for m in METRIC_NAMES)
    return f"<tr><td>{html.escape(name)}</td><td>{count}</td>{cells}</tr>"


def _metric_table(rows: list[str]) -> str:
    head = "".join(f"<th>{m}</th>" for m in METRIC_NAMES)
    return f"<table><tr><th></th><th>n</th>{head}</tr>{''.join(rows)}</table>"


def training_curve_png(history: list[dict[str, Any]]) -> bytes:
    """Training loss and validation Pr@0.5 per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(7, 3.4), dpi=110)
    ax.plot(epochs, [h["loss"] for h in history], color="tab:blue", label="training loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (smooth-L1 + GIoU)", color="tab:blue")
    ax2 = ax.twinx()
    val = [(h["epoch"], h["val"]["Pr@0.5"]) for h in history if "val" in h]
    if val:
        ax2.plot(*zip(*val, strict=True), color="tab:red", marker="o", label="validation Pr@0.5")
    ax2.set_ylabel("validation Pr@0.5 (%)", color="tab:red")
    ax2.set_ylim(0, 100)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def _model_step_notes(predictions: Path) -> str:
    """Paragraphs on what each stage after the first look did on the test split, as the stages describe it
    (:func:`rsvg.models.stages.result_notes`); empty for a model without them."""
    rows = [json.loads(line) for line in predictions.read_text().splitlines() if line.strip()]
    return "\n".join(result_notes(rows, lambda marked: metrics_from_rows(marked).overall.values["Pr@0.5"]))


def write_report(out: Path, steps: dict[str, dict[str, Any]], baselines: dict[str, dict[str, float]]) -> Path:
    """Write ``out/report.html`` from the outputs of the demo steps; returns its path."""
    out = Path(out)
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    history = json.loads((out / "run" / "history.json").read_text())
    gallery = json.loads((out / "gallery" / "gallery.json").read_text())
    build = json.loads((out / "rsvg" / "build_summary.json").read_text())
    overall = metrics["overall"]
    curve = out / "training_curve.png"
    curve.write_bytes(training_curve_png(history))

    rows = [_metric_row("MGVLF (lite config)", overall["values"], overall["count"])]
    rows += [_metric_row(name, vals) for name, vals in baselines.items()]
    per_cat = [
        _metric_row(NATURAL_NAMES.get(cat, cat), m["values"], m["count"]) for cat, m in metrics["per_category"].items()
    ]
    train_seconds = sum(h.get("seconds", 0.0) for h in history)
    model_steps = _model_step_notes(out / "eval" / "predictions.jsonl")
    pr50 = overall["values"]["Pr@0.5"]
    blind = max(v["Pr@0.5"] for v in baselines.values())
    figures = "".join(_img(p, "wide") + "<br>" for p in sorted((out / "stats").glob("*.png")))
    cards = []
    for item in gallery:
        cls = "good" if item["success"] else "bad"
        label = "success" if item["success"] else "failure"
        cards.append(
            f"<figure>{_img(out / 'gallery' / item['file'])}<figcaption><b>{html.escape(item['query'])}</b><br>"
            f"<span class='{cls}'>{label}, IoU {item['iou']:.2f}</span> — {html.escape(item['category'])}, "
            f"image {html.escape(item['image_id'])}"
            + (f"<br><small>{html.escape(item['provenance'])}</small>" if item.get("provenance") else "")
            + "</figcaption></figure>"
        )
    step_rows = ""
    for name, s in steps.items():
        took = "reused" if s["reused"] else f"{s['seconds']:.1f} s"
        step_rows += (
            f"<tr><td>{html.escape(name)}</td><td>{took}</td>"
            f"<td style='text-align:left'><code>{html.escape(s['command'])}</code></td></tr>"
        )
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>rsvg demo report</title>
<style>{CSS}</style></head><body>
<h1>rsvg demo report</h1>
<p>MGVLF (Zhan et al., IEEE TGRS 2023) trained on a grounding dataset built by <code>rsvg build</code> from synthetic
aerial scenes: {build.get("images_written", "?")} images, {build.get("expressions", "?")} expressions.</p>
<p class="headline">Test Pr@0.5: <b>{pr50:.2f} %</b> on {overall["count"]} expressions — against {blind:.2f} % for the
best query-blind baseline. Training took {train_seconds / 60:.1f} min ({len(history)} epochs).</p>
<h2>The seven metrics (test split, %)</h2>
<p>Pr@k: share of expressions whose predicted box has IoU &gt; k with the truth; meanIoU: mean IoU; cumIoU: total
intersection over total union. The baselines ignore the query: the <i>prior box</i> is the training split's mean box;
<i>blind pick</i> sees every referred object of the image perfectly and picks one at random (expected values).</p>
{_metric_table(rows)}
{model_steps}
<h2>Per category (test split, %)</h2>
{_metric_table(per_cat)}
<h2>Training</h2>
{_img(curve, "wide")}
<h2>Gallery</h2>
<p>Green: ground truth; red: prediction; colours: where the model looks (with the cells head: the softmax of
the cell scores, i.e. how sure it is that each cell holds the referred object; with the paper's [REG] head: the
[REG] token's attention over the image in the last fusion layer).</p>
{"".join(cards)}
<h2>Dataset (paper Fig. 3 and Fig. 4)</h2>
{figures}
<h2>Steps and how to re-run each alone</h2>
<table><tr><th>step</th><th>time</th><th>command</th></tr>{step_rows}</table>
</body></html>
"""
    path = out / "report.html"
    atomic_write_text(path, page)
    return path

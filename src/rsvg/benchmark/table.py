"""The benchmark's table: one row per method with the seven metrics on the test split, parameters, training time,
evaluation time per expression and a paired sign test against MGVLF on the same expressions; the two query-blind
rows; and, on DIOR-RSVG's official split only, the paper's figures beside each row with the difference.

Written as ``table.json`` (everything), ``table.md`` and ``table.html`` (opens with no server: the table and a
figure of Pr@0.5 against evaluation time per expression, drawn as inline SVG).
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from rsvg.benchmark.plan import RowPlan
from rsvg.benchmark.runner import RowResult
from rsvg.data.xmlio import atomic_write_text
from rsvg.metrics import METRIC_NAMES

__all__ = ["build_table", "write_table"]

#: the row every other is paired with
REFERENCE_ROW = "mgvlf"


def _paired(result_dir: Path, reference_dir: Path) -> dict[str, Any] | None:
    """``rsvg compare``'s sign test of a row's test predictions against the reference row's."""
    from rsvg.paired import compare_predictions, read_predictions

    a, b = reference_dir / "predictions.jsonl", result_dir / "predictions.jsonl"
    if not (a.is_file() and b.is_file()):
        return None
    c = compare_predictions(read_predictions(a), read_predictions(b))
    return {"right_only_mgvlf": c.right_only_a, "right_only_row": c.right_only_b, "p": c.sign_test_p,
            "z": c.sign_test_z}  # fmt: skip


def _parameters(checkpoint: Path) -> int | None:
    """The parameter count of the model a checkpoint holds (built from its config at random weights)."""
    from rsvg.inference import Grounder

    if not checkpoint.exists():
        return None
    model = Grounder.from_checkpoint(checkpoint, device="cpu").model
    return sum(p.numel() for p in model.parameters())


def build_table(
    plans: list[RowPlan], results: list[RowResult], baselines: dict[str, dict[str, float]], official: bool
) -> dict[str, Any]:
    """Everything the table shows, as JSON-ready data. ``official``: the data is DIOR-RSVG's official split, so the
    paper's figures and the differences stand beside each row."""
    by_name = {r.name: r for r in results}
    reference = next((p for p in plans if p.row.name == REFERENCE_ROW), None)
    rows = []
    for plan in plans:
        result = by_name[plan.row.name]
        row = plan.row
        visual, language = row.encoders(plan.variant)
        entry: dict[str, Any] = {
            "name": row.name, "method": row.method, "venue": row.venue, "visual": visual,
            "language": language, "config": plan.config, "overrides": plan.overrides, "status": result.status,
            "metrics": result.metrics, "train_minutes": round(result.train_seconds / 60, 1) if result.metrics else None,
            "eval_ms_per_expression": round(1000 * result.eval_seconds / result.samples, 1) if result.samples else None,
            "error": result.error,
        }  # fmt: skip
        if result.metrics:
            entry["parameters"] = _parameters(plan.run_dir / "best")
            if reference is not None and plan is not reference and by_name[REFERENCE_ROW].metrics:
                entry["vs_mgvlf"] = _paired(plan.eval_dir, reference.eval_dir)
        if official and row.paper:
            entry["paper"] = row.paper
            entry["difference"] = {m: round(result.metrics[m] - v, 2) for m, v in row.paper.items() if result.metrics}
        rows.append(entry)
    return {"official_split": official, "rows": rows, "query_blind": baselines}


def _cell(value: Any, digits: int = 2) -> str:
    if value is None or value == "":
        return "—"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _cells(table: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The table's header and its rows as text cells, what both the Markdown and the HTML show."""
    official = table["official_split"]
    head = ["method", "venue", "visual", "language", *METRIC_NAMES, "params (M)", "train min", "ms/expr",
            "vs MGVLF (p)"]  # fmt: skip
    if official:
        head.append("paper Pr@0.5 (Δ)")
    rows = []
    for r in table["rows"]:
        m = r["metrics"]
        params = f"{r['parameters'] / 1e6:.1f}" if r.get("parameters") else "—"
        vs = r.get("vs_mgvlf")
        paired = f"+{vs['right_only_row']}/−{vs['right_only_mgvlf']} ({vs['p']:.2g})" if vs else "—"
        cells = [r["method"], r["venue"], r["visual"], r["language"], *(_cell(m.get(k)) for k in METRIC_NAMES),
                 params, _cell(r["train_minutes"], 1), _cell(r["eval_ms_per_expression"], 1), paired]  # fmt: skip
        if not m:
            cells[4] = r["status"] + (f": {r['error'].splitlines()[0]}" if r["error"] else "")
        if official:
            paper = r.get("paper", {}).get("Pr@0.5")
            diff = r.get("difference", {}).get("Pr@0.5")
            cells.append(f"{paper:.2f} ({diff:+.2f})" if paper is not None and diff is not None else _cell(paper))
        rows.append(cells)
    for name, values in table["query_blind"].items():
        cells = [name, "", "", "query-blind", *(_cell(values.get(k)) for k in METRIC_NAMES), "", "", "", ""]
        rows.append(cells + ([""] if official else []))
    return head, rows


def _markdown(table: dict[str, Any]) -> str:
    head, rows = _cells(table)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines) + "\n"


def _figure(table: dict[str, Any]) -> str:
    """An SVG scatter of Pr@0.5 against evaluation milliseconds per expression, one labelled point per row."""
    points = [(r["eval_ms_per_expression"], r["metrics"]["Pr@0.5"], r["name"]) for r in table["rows"]
              if r["metrics"] and r["eval_ms_per_expression"]]  # fmt: skip
    if not points:
        return "<p>No row finished: nothing to plot.</p>"
    w, h, pad = 640, 360, 50
    xmax = max(p[0] for p in points) * 1.1
    sx = lambda v: pad + (w - 2 * pad) * v / xmax  # noqa: E731
    sy = lambda v: h - pad - (h - 2 * pad) * v / 100  # noqa: E731
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-size="11">',
             f'<line x1="{pad}" y1="{h - pad}" x2="{w - pad}" y2="{h - pad}" stroke="black"/>',
             f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{h - pad}" stroke="black"/>',
             f'<text x="{w / 2}" y="{h - 12}" text-anchor="middle">evaluation ms per expression (this machine)</text>',
             f'<text x="14" y="{h / 2}" transform="rotate(-90 14 {h / 2})" text-anchor="middle">test Pr@0.5 (%)</text>']
    for tick in range(0, 101, 20):
        parts.append(f'<text x="{pad - 6}" y="{sy(tick) + 4}" text-anchor="end">{tick}</text>')
    for x, y, name in points:
        parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="4" fill="#1f77b4"/>')
        parts.append(f'<text x="{sx(x) + 6:.1f}" y="{sy(y) - 6:.1f}">{html.escape(name)}</text>')
    for name, values in table["query_blind"].items():
        parts.append(f'<line x1="{pad}" y1="{sy(values["Pr@0.5"]):.1f}" x2="{w - pad}" y2="{sy(values["Pr@0.5"]):.1f}" '
                     'stroke="#999" stroke-dasharray="4 3"/>')
        parts.append(f'<text x="{w - pad}" y="{sy(values["Pr@0.5"]) - 4:.1f}" text-anchor="end" fill="#666">'
                     f'{html.escape(name)}</text>')
    parts.append("</svg>")  # fmt: skip
    return "\n".join(parts)


def _html(table: dict[str, Any], title: str) -> str:
    header, body = _cells(table)
    cells = "".join(f"<th>{html.escape(c)}</th>" for c in header)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in body)
    note = ("The paper's figures (Zhan et al., IEEE TGRS 2023, Tables II and III) stand beside each row: the data is "
            "DIOR-RSVG's official split." if table["official_split"] else
            "The data is not DIOR-RSVG's official split, so the paper's figures are not shown.")  # fmt: skip
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>"
            "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
            "padding:3px 6px;text-align:right}td:first-child,th:first-child{text-align:left}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><p>{note} Metrics in percent on the test split; Pr@k counts IoU &gt; k. "
            "“vs MGVLF” counts the expressions right (IoU &gt; 0.5) for this row only (+) and for MGVLF only (−), "
            "with the exact sign test's p.</p>"
            f"<table><tr>{cells}</tr>{rows}</table><h2>Accuracy against time</h2>{_figure(table)}"
            "</body></html>")  # fmt: skip


def write_table(out: Path, table: dict[str, Any], title: str) -> None:
    """``OUT/table.json``, ``table.md`` and ``table.html``, each written whole."""
    atomic_write_text(out / "table.json", json.dumps(table, indent=2))
    atomic_write_text(out / "table.md", _markdown(table))
    atomic_write_text(out / "table.html", _html(table, title))

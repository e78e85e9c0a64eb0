"""The table of ``scripts/bench_families.sh``: one row per config's ``rsvg bench model`` JSON in a folder.

Usage: bench_families_summary.py FOLDER [CONFIG_NAME ...]   (the rows' order)"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def row(name: str, r: dict[str, Any]) -> str:
    inference = r["inference"]
    batch_key = next(k for k in inference if k != "batch1")
    training = r.get("training") or {}
    peaks = r.get("peak_rss_gib", {})
    cells = [
        name,
        r["model"]["arch"],
        f"{r['model']['params']['total'] / 1e6:.1f}",
        f"{r['flops']['per_image_gflops']:.0f}",
        f"{inference['batch1']['optimised']['seconds']:.3f}",
        f"{inference[batch_key]['optimised']['seconds_per_image']:.3f}",
        f"{training['optimised']['seconds']:.2f}" if training else "",
        f"{max(peaks.get('infer_optimised', 0), peaks.get('train_optimised', 0)):.1f}",
    ]
    return "| " + " | ".join(cells) + " |"


def main(folder: Path, order: list[str]) -> None:
    """The table of ``folder``'s results, in ``order`` (config names) where given, the rest by name after them."""
    found = {p.stem: p for p in folder.glob("*.json")}
    names = [n for n in order if n in found] + sorted(set(found) - set(order))
    results = {n: json.loads(found[n].read_text()) for n in names}
    if not results:
        raise SystemExit(f"no rsvg bench model JSON in {folder}")
    first = next(iter(results.values()))
    machine = first["machine"]
    print(f"{machine.get('cpu', '?')}, {machine.get('torch_threads', '?')} torch threads, torch {machine.get('torch')}")
    print()
    print("| config | family | parameters (M) | GFLOPs per image | inference batch 1 (s) | batch 8 (s per image) "
          "| training step, batch 2 (s) | peak memory (GiB) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        print(row(name, r))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "bench_families_out"), sys.argv[2:])

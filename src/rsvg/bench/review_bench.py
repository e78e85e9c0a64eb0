"""``rsvg bench review``: the review server under a team's load, against one annotator alone in the same run.

A small review dataset and the accounts are made in a temporary folder; ``rsvg serve`` runs in a child process
on loopback (so the clients' threads do not share its interpreter). First one annotator makes its decisions
alone (the baseline: latency without contention), then the whole team at once, with grounding requests beside
them when a checkpoint is given. Each phase reports decisions/s and latency percentiles, and is checked against
the database afterwards (every acknowledged decision stored once, nothing else).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from rsvg.bench.review_load import ServerProcess, check_review, run_review_load, write_review_dataset
from rsvg.web.accounts import AccountStore
from rsvg.web.dataset_view import ReviewDataset, default_db_path
from rsvg.web.review_db import ReviewStore

PASSWORD = "bench password"


def benchmark_review(
    annotators: int = 20,
    decisions: int = 100,
    images: int = 50,
    checkpoint: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Decisions/s and latency of one annotator alone and of ``annotators`` at once (``decisions`` each)."""
    say = progress or (lambda _msg: None)
    with tempfile.TemporaryDirectory(prefix="rsvg-bench-review-") as tmp:
        root = write_review_dataset(Path(tmp) / "data", images=images)
        items = len(ReviewDataset(root))
        accounts = AccountStore(default_db_path(root))
        team = [(f"annotator{i:02d}", PASSWORD) for i in range(annotators)]
        for name, password in team:
            accounts.add_user(name, password)
        accounts.add_user("lead", PASSWORD, "admin")
        args = ["--dataset", str(root)]
        if checkpoint is not None:
            args += ["--checkpoint", str(checkpoint)]
        grounding = {"ground_account": ("lead", PASSWORD), "ground_images": ["00001", "00002", "00003"]}
        results: dict = {"expressions": items, "grounding traffic": "yes" if checkpoint is not None else "no"}
        with ServerProcess(args, Path(tmp) / "serve.log") as server:
            say(f"one annotator, {decisions} decisions")
            alone = run_review_load(server.url, team[:1], decisions, items, seed=1)
            say(f"{annotators} annotators, {decisions} decisions each")
            kwargs = grounding if checkpoint is not None else {}
            together = run_review_load(server.url, team, decisions, items, seed=2, **kwargs)  # type: ignore[arg-type]
        dataset = ReviewDataset(root)
        store = ReviewStore(default_db_path(root), len(dataset), dataset.fingerprint)
        problems = check_review(store, [*alone.acks, *together.acks])
    for label, report in (("alone", alone), ("team", together)):
        for key, value in report.summary().items():
            results[f"{label}: {key}"] = value
    results["throughput team / alone"] = round(together.decisions_per_s / alone.decisions_per_s, 2)
    results["p95 latency team / alone"] = round(together.latency_ms(0.95) / alone.latency_ms(0.95), 2)
    results["database check"] = "every acknowledged decision stored once" if not problems else "; ".join(problems)
    return results

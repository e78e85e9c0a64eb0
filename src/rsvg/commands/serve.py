"""``rsvg serve`` (grounding page, JSON API, review tool) and ``rsvg review-export``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from rsvg.data.image_io import MAX_IMAGE_PIXELS, MAX_IMAGE_SIDE

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def serve(
    checkpoint: Annotated[
        Path | None, typer.Option(help="Checkpoint folder written by rsvg train (e.g. runs/x/best) for grounding.")
    ] = None,
    dataset: Annotated[
        Path | None, typer.Option(help="DIOR-RSVG folder to review (and whose images the grounding page offers).")
    ] = None,
    host: Annotated[
        str,
        typer.Option(
            help="Address to listen on. The default serves this machine only. Any other address (0.0.0.0: the "
            "network) needs accounts in the review database (rsvg users add), and then every page asks for a login."
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port.")] = 8000,
    db: Annotated[Path | None, typer.Option(help="Review database (SQLite). Default: DATASET/review.sqlite3.")] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda or cuda:N, for the model.")] = "cpu",
    precision: Annotated[
        str, typer.Option(help="fp32, bf16, or auto: bf16 where the CPU or GPU has native bf16 units.")
    ] = "fp32",
    max_upload_mb: Annotated[float, typer.Option(min=0.01, help="Largest upload accepted, in MB.")] = 20.0,
    max_image_pixels: Annotated[
        int, typer.Option(min=1, help="Largest image accepted, in pixels (width × height).")
    ] = MAX_IMAGE_PIXELS,
    max_image_side: Annotated[
        int, typer.Option(min=8, help="Largest image side accepted, in pixels.")
    ] = MAX_IMAGE_SIDE,
    max_ground_requests: Annotated[
        int,
        typer.Option(
            min=1, help="Grounding requests the server holds at once (running or waiting); more get 429 at once."
        ),
    ] = 4,
) -> None:
    """Serve the grounding page (/), the JSON API (POST /api/ground, documented at /docs) and the review tool
    (/review), where annotators accept, reject or correct a dataset's expressions and boxes."""
    err = Console(stderr=True, soft_wrap=True)
    try:
        import uvicorn

        from rsvg.web.app import LOOPBACK_HOSTS, create_app
        from rsvg.web.guards import Limits
    except ImportError as exc:
        typer.echo(f"error: the web server needs the web extra: pip install 'rsvg[web]' ({exc})", err=True)
        raise typer.Exit(2) from None
    from rsvg.data.records import DatasetError
    from rsvg.engine.checkpoint import CheckpointError
    from rsvg.web.accounts import AccountError
    from rsvg.web.review_db import ReviewDBError

    if checkpoint is None and dataset is None:
        err.print("note: no --checkpoint and no --dataset: the pages will say what is missing", markup=False)
    limits = Limits(
        max_upload_bytes=int(max_upload_mb * 1024 * 1024),
        max_image_pixels=max_image_pixels,
        max_image_side=max_image_side,
        max_ground_requests=max_ground_requests,
    )
    try:
        app = create_app(
            checkpoint,
            dataset,
            db_path=db,
            device=device,
            precision=precision,
            limits=limits,
            allowed_hosts=[*LOOPBACK_HOSTS] if host in LOOPBACK else None,
        )
    except (CheckpointError, DatasetError, ReviewDBError, AccountError, OSError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    accounts = app.state.web.accounts
    users = accounts.users() if accounts is not None else []
    if host not in LOOPBACK and not users:
        where = f"--db {db}" if db is not None else f"--dataset {dataset}" if dataset is not None else "--db FILE"
        typer.echo(
            f"error: --host {host} serves beyond this machine, and there are no accounts: anyone who reaches the "
            f"port could post decisions and use the model. Add one first (rsvg users add NAME --role admin {where}), "
            f"then start the server with the same {where.split()[0]}.",
            err=True,
        )
        raise typer.Exit(2)
    if app.state.web.grounder is not None:
        err.print(app.state.web.grounder.precision.describe(), markup=False)
    if users:
        admins = sum(u.is_admin for u in users)
        err.print(f"login required: {len(users)} accounts ({admins} admins) in {accounts.path}", markup=False)
    if host not in LOOPBACK:
        err.print(
            f"note: listening on {host} over plain HTTP; put a reverse proxy with HTTPS in front (README: review "
            "with a team), or passwords and session cookies cross the network readable",
            style="yellow",
            markup=False,
        )
    shown = "127.0.0.1" if host in LOOPBACK else host
    err.print(
        f"grounding page http://{shown}:{port}/  review http://{shown}:{port}/review  "
        f"API docs http://{shown}:{port}/docs",
        markup=False,
    )
    uvicorn.run(app, host=host, port=port, log_level="info")


def review_export(
    root: Annotated[Path, typer.Argument(help="The reviewed DIOR-RSVG folder.")],
    out: Annotated[
        Path,
        typer.Argument(
            help="Folder for the corrected dataset (must not exist, nor be, hold or lie inside ROOT or hold --db)."
        ),
    ],
    db: Annotated[Path | None, typer.Option(help="Review database. Default: ROOT/review.sqlite3.")] = None,
    drop_unreviewed: Annotated[
        bool, typer.Option(help="Also leave out the objects nobody has accepted, edited or rejected yet.")
    ] = False,
    overwrite: Annotated[
        bool, typer.Option(help="Replace OUT if it exists (the old one stays until the new one is complete).")
    ] = False,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the summary as JSON here (a file outside ROOT).")
    ] = None,
) -> None:
    """Write the dataset as the annotators corrected it: rejected expressions removed, edited texts and boxes
    applied, split files renumbered (every kept expression stays in its split). Check it with rsvg check-data."""
    from rsvg.data.records import DatasetError
    from rsvg.data.xmlio import atomic_write_text
    from rsvg.output_paths import check_output_file, check_output_folder
    from rsvg.web.dataset_view import default_db_path
    from rsvg.web.export import export_reviewed
    from rsvg.web.review_db import ReviewDBError

    inputs = {"ROOT": root, "--db": db if db is not None else default_db_path(root)}
    check_output_folder(out, "OUT", inputs=inputs, overwrite=overwrite)
    if json_out is not None:
        check_output_file(json_out, "--json", inputs=inputs)
    console = Console()
    try:
        summary = export_reviewed(root, out, db, drop_unreviewed=drop_unreviewed, overwrite=overwrite)
    except (DatasetError, ReviewDBError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    table = Table(title=f"reviewed dataset: {summary.out}", show_header=False)
    table.add_row("objects in / out", f"{summary.objects_in} / {summary.objects_out}")
    table.add_row("images out", str(summary.images_out))
    for status, n in summary.statuses.items():
        table.add_row(status, str(n))
    table.add_row("splits", ", ".join(f"{k} {v}" for k, v in summary.splits.items()))
    agree = summary.agreement
    if agree.pairs:
        iou = f"{agree.mean_edit_iou:.3f}" if agree.mean_edit_iou is not None else "n/a (no pair edited both)"
        table.add_row(
            "agreement",
            f"{100 * (agree.same_verdict or 0):.1f} % same verdict over {agree.pairs} annotator pairs on "
            f"{agree.expressions} expressions; edited boxes' mean IoU {iou} over {len(agree.edit_ious)} pairs",
        )
    else:
        table.add_row("agreement", "no expression was reviewed by two annotators")
    console.print(table)
    if summary.disputed:
        shown = ", ".join(str(i) for i in summary.disputed[:20]) + (" …" if len(summary.disputed) > 20 else "")
        console.print(
            f"warning: {len(summary.disputed)} objects have annotators who disagree; each took its latest decision "
            f"({shown}). Settle them in the review tool (Show: disputed) and export again.",
            style="yellow",
            markup=False,
            highlight=False,
        )
    for name, n in summary.splits.items():
        if n == 0:
            console.print(
                f"warning: the {name} split of {summary.out} is empty (every object it listed was rejected or left "
                "out): rsvg check-data reports it, rsvg train and rsvg eval refuse an empty split they read",
                style="yellow",
                markup=False,
                highlight=False,
            )
    if json_out is not None:
        atomic_write_text(json_out, json.dumps(summary.to_dict(), indent=2))
    sys.stdout.flush()

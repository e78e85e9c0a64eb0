"""The ``rsvg`` command line."""

from __future__ import annotations

import typer

from rsvg import __version__
from rsvg.commands.bench import bench_app
from rsvg.commands.benchmark import benchmark
from rsvg.commands.build import build
from rsvg.commands.check_data import check_data
from rsvg.commands.compare import compare
from rsvg.commands.demo import demo
from rsvg.commands.evaluate import evaluate
from rsvg.commands.failures import ErrorReportingGroup
from rsvg.commands.ground import ground
from rsvg.commands.serve import review_export, serve
from rsvg.commands.stats import stats
from rsvg.commands.synth import synth
from rsvg.commands.train import train
from rsvg.commands.users import users_app

app = typer.Typer(
    name="rsvg",
    cls=ErrorReportingGroup,
    help="Visual grounding on remote sensing images: build, check and analyse datasets, train and evaluate "
    "MGVLF (Zhan et al., IEEE TGRS 2023), ground queries on your own images.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"rsvg {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """rsvg: visual grounding on remote sensing images."""


app.command("demo")(demo)
app.command("synth")(synth)
app.command("check-data")(check_data)
app.command("build")(build)
app.command("stats")(stats)
app.command("train")(train)
app.command("eval")(evaluate)
app.command("compare")(compare)
app.command("benchmark")(benchmark)
app.command("ground")(ground)
app.command("serve")(serve)
app.command("review-export")(review_export)
app.add_typer(users_app, name="users")
app.add_typer(bench_app, name="bench")

if __name__ == "__main__":
    app()

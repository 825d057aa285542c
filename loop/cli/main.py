"""The ``loop`` command line, built from one typer app per command group.

Each command parses its options, calls one library function and renders the result. Human
output goes to stdout as rich tables; ``--json`` output goes alone to stdout; progress bars,
logs and skipped-file lines go to stderr. A :class:`~loop.errors.LoopError` becomes
``error: <message>`` on stderr and exit code 1.

The groups of commands at the top level (``study``, ``annotate``, ``model``, ``rounds``,
``demo``) are
merged into ``loop`` itself, so that ``loop push`` stays ``loop push``; ``labelstudio``,
``annotators`` and ``bench`` are sub-commands.
"""

from __future__ import annotations

import typer

from loop.cli import (
    annotate,
    bench,
    cluster,
    consensus,
    data,
    demo,
    labelstudio,
    model,
    rounds,
    study,
)
from loop.cli.common import LoopGroup

app = typer.Typer(
    name="loop",
    cls=LoopGroup,
    help="Active-learning annotation loop for scientific images.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # never print locals: they can hold tokens
    add_completion=False,
)
app.add_typer(data.app)
app.add_typer(study.app)
app.add_typer(demo.app)
app.add_typer(labelstudio.app, name="labelstudio")
app.add_typer(labelstudio.annotators_app, name="annotators")
app.add_typer(annotate.app)
app.add_typer(consensus.app)
app.add_typer(model.app)
app.add_typer(rounds.app)
app.add_typer(bench.app, name="bench")
app.add_typer(cluster.app)


def main() -> None:
    """Console-script entry point."""
    app()

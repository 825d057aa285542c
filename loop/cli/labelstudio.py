"""``loop labelstudio`` (the study's local server) and ``loop annotators`` (accounts)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from loop.cli.common import (
    JsonOpt,
    LoopGroup,
    StudyArg,
    emit_json,
    err,
    out,
)

app = typer.Typer(
    cls=LoopGroup, help="Run the study's local Label Studio server.", no_args_is_help=True
)


annotators_app = typer.Typer(
    cls=LoopGroup, help="Annotator accounts in Label Studio.", no_args_is_help=True
)


@app.command("start")
def labelstudio_start(
    study: StudyArg,
    port: Annotated[
        int | None, typer.Option(help="Port on 127.0.0.1 (default: a free one).")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait until it is healthy.")] = 240.0,
    as_json: JsonOpt = False,
) -> None:
    """Start the study's Label Studio on 127.0.0.1 (SQLite, data in STUDY/labelstudio/)."""
    from loop.cli.wiring import server_of, start_server
    from loop.study import open_study

    with open_study(study) as s:
        server = server_of(s)
        with err.status("starting Label Studio (about 40 s the first time) ..."):
            info = start_server(s, timeout=timeout, port=port)
        admin = server.credentials()["admin"]
    if as_json:
        emit_json(
            {
                "url": info.url,
                "pid": info.pid,
                "login": admin["email"],
                "credentials": str(server.credentials_file),
            }
        )
        return
    out.print(f"Label Studio is running at {info.url} (pid {info.pid})")
    out.print(
        f"log in as {admin['email']}; the password is in {server.credentials_file} (mode 0600)"
    )


@app.command("stop")
def labelstudio_stop(study: StudyArg) -> None:
    """Stop the study's Label Studio server."""
    from loop.cli.wiring import server_of
    from loop.study import open_study

    with open_study(study) as s:
        stopped = server_of(s).stop()
    out.print("stopped" if stopped else "Label Studio was not running")


@app.command("status")
def labelstudio_status(study: StudyArg, as_json: JsonOpt = False) -> None:
    """Say whether the study's Label Studio runs, where, and whether it is healthy (exit code 1
    when it is not running or not healthy)."""
    from loop.cli.wiring import healthy, server_of
    from loop.study import open_study

    with open_study(study) as s:
        info = server_of(s).info()
    state = {
        "running": info is not None,
        "url": info.url if info else None,
        "pid": info.pid if info else None,
        "healthy": bool(info and healthy(info.url)),
    }
    if as_json:
        emit_json(state)
    else:
        out.print(
            f"running at {info.url} (pid {info.pid}), healthy: {state['healthy']}"
            if info
            else "not running"
        )
    if not state["healthy"]:  # as `systemctl status` does: scripts can test it
        raise typer.Exit(code=1)


@annotators_app.command("add")
def annotators_add(
    study: StudyArg,
    names: Annotated[list[str], typer.Argument(help="Annotator names (letters, digits, . _ -).")],
    domain: Annotated[str, typer.Option(help="Email domain of the new accounts.")] = "loop.local",
    profile: Annotated[
        str | None,
        typer.Option(
            help="Noise profile if simulated: perfect, careful, average, sloppy, or a "
            "\\[noise.NAME] of loop.toml."
        ),
    ] = None,
) -> None:
    """Create one Label Studio account (with its own API token) per annotator; idempotent."""
    from loop.cli.wiring import add_annotators, connect
    from loop.study import open_study

    with open_study(study) as s:
        if profile is not None:
            from loop.noise import profile_named

            profile_named(profile, s.config.noise)
        admin = connect(s)
        added = add_annotators(s, admin, names, domain=domain, profile=profile)
    for a in added:
        out.print(f"{a.name}: {a.email} (user {a.user_id}){' created' if a.created else ''}")


@annotators_app.command("list")
def annotators_list(study: StudyArg, as_json: JsonOpt = False) -> None:
    """List the study's annotators (names, emails, noise profiles; never tokens)."""
    from loop.store.annotators import annotators
    from loop.study import open_study

    with open_study(study) as s:
        rows = [
            {k: r[k] for k in ("name", "tool", "external_id", "email", "profile")}
            for r in annotators(s.store)
        ]
    if as_json:
        emit_json(rows)
        return
    table = Table("name", "email", "user", "profile")
    for r in rows:
        table.add_row(r["name"], r["email"], r["external_id"], r["profile"] or "")
    out.print(table)

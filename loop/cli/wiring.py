"""The one module of ``loop`` that imports :mod:`connectors`: it builds the Label Studio
client, server and simulated annotators from a study's configuration and hands them to the
library, which only knows the :class:`~loop.types.AnnotationTool` protocol."""

from __future__ import annotations

from connectors.accounts import add_annotators, connect, server_of
from connectors.credentials import env_server
from connectors.labelstudio_server import healthy
from connectors.simulated import simulate as run_simulate
from loop.cli.common import err

__all__ = ["add_annotators", "connect", "env_server", "healthy", "server_of"]


def simulated_annotators(s, admin, names: list[str], chosen: dict[str, str]) -> dict[str, str]:
    """Accounts for simulated annotators (made if missing); returns name -> noise profile:
    the one chosen, else the one stored, else careful, average, sloppy by position."""
    from loop.noise import DEFAULT_ORDER, profile_named
    from loop.store.annotations import annotators

    stored = {r["name"]: r["profile"] for r in annotators(s.store)}
    profiles = {}
    for i, name in enumerate(names):
        profiles[name] = (
            chosen.get(name) or stored.get(name) or DEFAULT_ORDER[i % len(DEFAULT_ORDER)]
        )
    for name, value in profiles.items():
        profile_named(value, s.config.noise)
        add_annotators(s, admin, [name], profile=value)
    return profiles


def simulate_now(s, admin, profiles: dict[str, str], seed: int, purpose: str = "annotate"):
    from loop.noise import profile_named

    with err.status("simulated annotators at work ...") as status_line:
        return run_simulate(
            s,
            admin,
            {n: profile_named(p, s.config.noise) for n, p in profiles.items()},
            seed=seed,
            purpose=purpose,
            progress=lambda name, n: status_line.update(f"{name}: {n} tasks annotated"),
        )


def wiring(s, annotators: str | None, seed: int):
    """(Label Studio client, simulated annotators or None)."""
    from loop.errors import ConfigError

    config = s.config.rounds
    if annotators is not None and annotators != "simulated":
        raise ConfigError(
            f"--annotators {annotators!r}: write 'simulated' (names and noise come from "
            "[rounds] in loop.toml), or leave it out to wait for people"
        )
    if annotators and len(config.annotators) < config.overlap:
        raise ConfigError(
            f"rounds.overlap = {config.overlap} but only {len(config.annotators)} simulated "
            "annotators: list more in rounds.annotators or lower the overlap"
        )
    tool = connect(s)
    if annotators is None:
        return tool, None
    chosen = dict(zip(config.annotators, config.profiles))
    profiles = simulated_annotators(s, tool, list(config.annotators), chosen)

    def annotate() -> dict:
        return simulate_now(s, tool, profiles, seed).annotated

    return tool, annotate

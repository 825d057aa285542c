"""The one module of ``loop`` that imports :mod:`connectors`: it builds the Label Studio
client, server and simulated annotators from a study's configuration and hands them to the
library, which only knows the :class:`~loop.types.AnnotationTool` protocol."""

from __future__ import annotations

from pathlib import Path

from connectors import accounts
from connectors import simulated as sim
from connectors.credentials import env_server
from connectors.labelstudio_server import healthy
from loop.cli.common import err

__all__ = [
    "add_annotators",
    "connect",
    "connect_as",
    "env_server",
    "healthy",
    "server_of",
    "simulate",
    "start_server",
]


def server_of(study):
    """The study's embedded Label Studio server."""
    return accounts.server_of(study.path)


def start_server(study, *, timeout: float = 240.0, port: int | None = None):
    """Start the study's embedded Label Studio (or find it running) and bring a study made
    before the local-files root moved up to date (its display images and tasks, once)."""
    server = server_of(study)
    info = server.start(timeout=timeout, port=port)
    tool = accounts.connect_local(study.path)
    try:
        tool.move_legacy_media()
    finally:
        tool.close()
    return info


def connect(study, *, retries: int = 4, backoff: float = 0.5):
    """The admin connection to the study's Label Studio (remote when the environment says so)."""
    return accounts.connect(study.path, retries=retries, backoff=backoff)


def connect_as(study, name: str, admin):
    """A connection as the study's annotator ``name``, with that account's own token."""
    return accounts.connect_as(study.path, name, admin)


def add_annotators(study, admin, names, *, domain: str = "loop.local", profile=None):
    """Make (or find again) the accounts and record them in the study; a ``profile`` of None
    keeps the one stored. Returns :class:`loop.store.annotators.Annotator` rows."""
    from loop.store.annotators import save_annotator

    return [
        save_annotator(
            study.store,
            tool=admin.name,
            name=a.name,
            user_id=a.user_id,
            email=a.email,
            profile=profile,
            created=a.created,
        )
        for a in accounts.ensure_accounts(study.path, admin, names, domain=domain)
    ]


def simulate(study, admin, profiles, *, seed=0, limit=None, purpose="annotate", progress=None):
    """Simulated annotators (:func:`connectors.simulated.simulate`) on the study's project of
    ``purpose``, copying its ground truth."""
    import numpy as np

    from loop.learn.labels import boxes_of, classmap_of
    from loop.store.annotations import project_of
    from loop.store.labels import truth_classes
    from loop.tasks import box_classes, pixel_classes
    from loop.tasks.detection import match_radius

    store = study.store
    project = project_of(store, admin.name, purpose)

    def truth_of(image_id: int):
        truth = store.truth(image_id)
        if truth is None:
            return None
        image = store.image(image_id)
        if box_classes(study.config):
            boxes, index = boxes_of(study, image, truth, partial=False)
            return sim.Truth(
                kind="boxes",
                shape=(image["height"], image["width"]),
                names=box_classes(study.config),
                boxes=boxes,
                box_classes=index,
                radius=match_radius(study.config),
            )
        if pixel_classes(study.config):
            classes = classmap_of(study, image, truth)
            return sim.Truth(
                kind="classmap",
                shape=(image["height"], image["width"]),
                classmap=np.asarray(getattr(classes, "mask", classes)),
                names=study.config.labels.classes,
            )
        return sim.Truth(
            kind=truth["kind"],
            shape=(image["height"], image["width"]),
            mask_path=Path(truth["mask_path"]) if truth["mask_path"] else None,
            klass=truth["class"],
        )

    return sim.simulate(
        admin,
        profiles,
        root=study.path,
        project=None if project is None else project["project"],
        truth_of=truth_of,
        classes=sorted({c for c in truth_classes(store).values() if c is not None}),
        label=study.config.labels.object,
        seed=seed,
        limit=limit,
        purpose=purpose,
        progress=progress,
    )


def simulated_annotators(s, admin, names: list[str], chosen: dict[str, str]) -> dict[str, str]:
    """Accounts for simulated annotators (made if missing); returns name -> noise profile:
    the one chosen, else the one stored, else careful, average, sloppy by position."""
    from loop.noise import DEFAULT_ORDER, profile_named
    from loop.store.annotators import annotators

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
        return simulate(
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

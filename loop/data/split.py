"""Split a study's images into a held-out test set, an initial labeled set and the pool.

The test split is drawn first, stratified by group, and is never offered for annotation; the
initial labeled set is drawn from what is left, stratified the same way; everything else that
matches ``where`` is the pool, and images that do not match are ``excluded``. Only images with
ground truth can be test or initial images (the test set is scored against it and the initial
set trains on it). The draw depends only on ``seed`` and the images' paths, so re-running a
split with the same arguments gives the same split.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from loop.errors import SplitError
from loop.store import images, labels, meta_column
from loop.study import Study
from loop.tasks import task_of

IMAGE_COLUMNS = ("name", "path", "root", "channels", "dtype", "height", "width")
_WHERE = re.compile(r"^\s*([^=!<>]+?)\s*(!=|=)\s*(.*?)\s*$")


@dataclass(frozen=True)
class Condition:
    """One ``key=value`` or ``key!=value`` filter on images."""

    key: str
    op: str
    value: str


def parse_where(expressions) -> list[Condition]:
    """Parse ``["modality=fluorescence", "batch!=3"]``.

    Raises
    ------
    SplitError
        On an expression without ``=`` or ``!=``.
    """
    out = []
    for expr in expressions:
        m = _WHERE.match(expr)
        if not m or not m.group(1):
            raise SplitError(
                f"--where {expr!r}: write KEY=VALUE or KEY!=VALUE, e.g. modality=fluorescence"
            )
        out.append(Condition(m.group(1), m.group(2), m.group(3)))
    return out


def _value_getter(study: Study, key: str):
    """A function image-row -> value for a metadata key, an image column or ``class``."""
    if key == "class":
        truth = labels.truth_classes(study.store)
        return lambda row: truth.get(row["id"])
    column = key if key in IMAGE_COLUMNS else meta_column(key)
    if not images.has_column(study.store, column):
        known = sorted(set(study.store.meta_columns()) | set(IMAGE_COLUMNS) | {"class"})
        raise SplitError(f"unknown image column {key!r}; known: {', '.join(known)}")
    return lambda row: row[column]


def select_images(study: Study, conditions: list[Condition]) -> tuple[list[dict], list[dict]]:
    """Images matching every condition, and the others; both sorted by (root, path)."""
    rows = study.store.images(order_by="root, path")
    getters = [(_value_getter(study, c.key), c) for c in conditions]
    matched, other = [], []
    for row in rows:
        ok = all(
            (str(get(row)) == c.value if get(row) is not None else c.value == "") == (c.op == "=")
            for get, c in getters
        )
        (matched if ok else other).append(row)
    return matched, other


def _count(amount: float, n: int, what: str) -> int:
    k = int(np.floor(amount * n + 0.5)) if amount < 1 else int(amount)  # half rounds up
    if k > n:
        raise SplitError(
            f"asked for {k} {what} images but only {n} eligible images with ground truth remain; "
            "ask for fewer, or ingest more images with masks/classes"
        )
    return k


def allocate(sizes: dict, k: int) -> dict:
    """Share ``k`` among strata in proportion to ``sizes`` (largest remainder, ties by key).

    >>> allocate({"a": 6, "b": 3, "c": 1}, 5)
    {'a': 3, 'b': 2, 'c': 0}
    """
    total = sum(sizes.values())
    if total == 0 or k == 0:
        return {key: 0 for key in sizes}
    exact = {key: k * n / total for key, n in sizes.items()}
    share = {key: int(np.floor(v)) for key, v in exact.items()}
    order = sorted(sizes, key=lambda key: (-(exact[key] - share[key]), str(key)))
    for key in order[: k - sum(share.values())]:
        share[key] += 1
    return share


def _draw(strata: dict, k: int, rng: np.random.Generator) -> set[int]:
    chosen: set[int] = set()
    for key, n in allocate({key: len(ids) for key, ids in strata.items()}, k).items():
        ids = strata[key]
        chosen.update(ids[i] for i in rng.permutation(len(ids))[:n])
    return chosen


@dataclass(frozen=True)
class SplitResult:
    counts: dict
    stratify: tuple[str, ...]
    by_stratum: dict


def split_study(
    study: Study,
    *,
    test: float,
    initial: float = 0,
    seed: int = 0,
    where=(),
    stratify: tuple[str, ...] | None = None,
    test_where=(),
    force: bool = False,
) -> SplitResult:
    """Assign every image of ``study`` to ``test``, ``labeled``, ``pool`` or ``excluded``.

    Parameters
    ----------
    test, initial : float
        A fraction (< 1) of the eligible images with ground truth, or a count (>= 1).
    seed : int
        Seeds ``np.random.default_rng``; the same seed gives the same split.
    where : sequence of str
        ``KEY=VALUE`` / ``KEY!=VALUE`` filters; images that fail them are ``excluded``.
    stratify : tuple of str, optional
        Metadata keys (or ``class``) to stratify by; default from the config, else ``class``
        for classification and nothing for segmentation.
    test_where : sequence of str
        ``KEY=VALUE`` / ``KEY!=VALUE`` filters: the test split is every eligible image with
        ground truth that passes them (``test`` is then not used), as when consecutive slices
        of a stack must not be split at random.
    force : bool
        Re-split a study that already has pushed tasks or annotated labels.

    Raises
    ------
    SplitError
        Unknown column, too few images, or a study whose annotation has begun (without
        ``force``).
    """
    store = study.store
    if not force:
        n_tasks, n_annot = images.people_work(store)
        if n_tasks or n_annot:
            raise SplitError(
                f"the study already has {n_tasks} pushed tasks and {n_annot} annotated labels; "
                "re-splitting would move annotated images: pass --force if you mean it"
            )
    if stratify is None:
        stratify = study.config.split.stratify or task_of(study.config.task).stratify
    conditions = parse_where(where)
    eligible, excluded = select_images(study, conditions)
    if not eligible:
        raise SplitError(f"no image matches {' and '.join(where)}")
    getters = [_value_getter(study, key) for key in stratify]
    has_truth = labels.images_with(store, "truth")

    def strata_of(rows):
        strata = defaultdict(list)
        for row in rows:
            strata[tuple(str(get(row)) for get in getters)].append(row["id"])
        return dict(sorted(strata.items()))

    candidates = [r for r in eligible if r["id"] in has_truth]
    rng = np.random.default_rng(seed)
    if test_where:
        held = {r["id"] for r in select_images(study, parse_where(test_where))[0]}
        test_ids = {r["id"] for r in candidates if r["id"] in held}
        if not test_ids:
            raise SplitError(
                f"no eligible image with ground truth matches {' and '.join(test_where)}: "
                "check the metadata key and value (`loop status` lists the columns)"
            )
    else:
        test_ids = _draw(strata_of(candidates), _count(test, len(candidates), "test"), rng)
    rest = [r for r in candidates if r["id"] not in test_ids]
    n_initial = _count(initial, len(rest), "initial")
    initial_ids = _draw(strata_of(rest), n_initial, rng)

    assignment = {r["id"]: "excluded" for r in excluded}
    for row in eligible:
        rid = row["id"]
        assignment[rid] = "test" if rid in test_ids else "labeled" if rid in initial_ids else "pool"
    counts = {s: 0 for s in ("pool", "labeled", "test", "excluded")}
    for value in assignment.values():
        counts[value] += 1
    by_stratum = {
        "/".join(key) or "all": {
            s: sum(assignment[i] == s for i in ids) for s in ("pool", "labeled", "test")
        }
        for key, ids in strata_of(eligible).items()
    }
    params = {
        "test": test,
        "initial": initial,
        "seed": seed,
        "where": list(where),
        "test_where": list(test_where),
        "stratify": list(stratify),
    }
    images.set_splits(store, assignment, params=params, counts=counts)
    return SplitResult(counts=counts, stratify=tuple(stratify), by_stratum=by_stratum)

"""The study database (:mod:`~loop.store.db`: the :class:`Store` and its helpers) and its
schema with migrations (:mod:`~loop.store.schema`)."""

from loop.store.db import (
    LABEL_SOURCES,
    META_PREFIX,
    SPLITS,
    Store,
    dumps,
    meta_column,
    utcnow,
)
from loop.store.schema import MIGRATIONS, SCHEMA_VERSION, migrate

__all__ = [
    "LABEL_SOURCES",
    "META_PREFIX",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "SPLITS",
    "Store",
    "dumps",
    "meta_column",
    "migrate",
    "utcnow",
]

"""One image's metadata as a study stores it (``loop ingest``: sidecars and tables)."""

from __future__ import annotations

import math

from loop.errors import MetadataError
from loop.store import dumps, meta_column

SQLITE_INT = (-(2**63), 2**63 - 1)


def clean_metadata(row: dict | None) -> dict:
    """One image's metadata as the study stores it: keys stripped (``id`` and empty keys
    dropped); lists and objects as JSON text; what SQLite cannot hold as a number (an integer
    past 64 bits, NaN, infinity) as text, so nothing is lost.

    Raises
    ------
    MetadataError
        When two keys would share one column (``Key With Spaces`` and ``key_with_spaces``).
    """
    if not row:
        return {}
    out, columns = {}, {}
    for key, value in row.items():
        if key is None or str(key).strip().lower() == "id" or not str(key).strip():
            continue
        key = str(key).strip()
        if isinstance(value, (list, dict)):
            value = dumps(value)
        elif isinstance(value, int) and not SQLITE_INT[0] <= value <= SQLITE_INT[1]:
            value = str(value)
        elif isinstance(value, float) and not math.isfinite(value):
            value = str(value)
        column = meta_column(key)
        if column in columns and columns[column] != key:
            raise MetadataError(
                f"metadata keys {columns[column]!r} and {key!r} would share column {column}; "
                "rename one of them"
            )
        columns[column] = key
        out[key] = value
    return out

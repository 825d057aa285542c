"""Files the loop writes beside its database, written atomically."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to: renamed onto ``path`` when the block
    ends, removed when it fails (a full disk, an exception, Ctrl-C), so a reader never sees
    half a file and no temporary file is left behind.

    The temporary name keeps the extension (libraries pick the format from it) and is the
    same every time: ``torch.save`` records the file name inside the archive, so a name
    with a pid would make the same weights hash differently (writers are serialised by the
    study's lock instead).

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> with atomic_path(folder / "a.txt") as tmp:
    ...     _ = tmp.write_text("done")
    >>> (folder / "a.txt").read_text(), sorted(p.name for p in folder.iterdir())
    ('done', ['a.txt'])
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        # name the file the user asked for: the error is about writing it (copyfile names its
        # source first and the temporary file second; a failed write() names nothing)
        written = [exc.filename, exc.filename2]
        if exc.filename is None or str(tmp) in map(str, written):
            exc.filename, exc.filename2 = str(path), None
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise

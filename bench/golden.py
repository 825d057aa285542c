"""The golden run: a small seeded study run end to end through the CLI, dumped for comparison.

A study of the first 30 DSB fluorescence images (8 test, 6 initial), a tiny network, two rounds
with simulated annotators through a real Label Studio (``LABEL_STUDIO_URL`` /
``LABEL_STUDIO_API_KEY`` when set, else the study's own embedded server), then the final
training. Its database is dumped (every table's rows, ids, timestamps, timings and the tool's
own ids aside) to a JSON file. Two runs of the same commit give the same file; a refactoring
that claims "behaviour unchanged" gives the same file before and after::

    python -m bench.golden /tmp/golden-before.json
    ... change the code ...
    python -m bench.golden /tmp/golden-after.json && cmp /tmp/golden-*.json
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DSB = Path(os.environ.get("LOOP_SHARED_DATA", REPO.parent / "shared" / "data")) / "dsb2018_train"
# columns that differ between two runs by nature (ids, the tool's ids, timings, titles)
VOLATILE = {"id", "timings", "seconds", "project", "external_id", "title", "at"}
GOLDEN_TOML = """\
task = "segmentation"
groups = ["modality"]
[model]
nbase = [2, 8, 16, 32]
crop = 64
batch_size = 4
min_steps = 12
max_steps = 12
val_fraction = 0.0
retry_blind = false
[score]
k = 4
shortlist = 2
[rounds]
min_agreement = 0.3
annotators = ["gold-alice", "gold-bob", "gold-carol"]
"""


def dump(db_path: Path) -> dict:
    """Every table's rows, sorted, without volatile columns or ``*_at`` timestamps."""
    from loop.store.db import dump_tables

    return dump_tables(db_path, leave_out=VOLATILE)


def _loop(*args: object) -> None:
    cmd = [sys.executable, "-m", "loop.cli", *map(str, args)]
    result = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=sys.stderr, text=True)
    if result.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({result.returncode})")


def golden_run(work: Path) -> dict:
    """Build the study under ``work``, run it, return the dump of its database."""
    manifest = json.loads((DSB / "manifest.json").read_text())
    chosen = [m for m in manifest if m["modality"] == "fluorescence"][:30]
    data = work / "data"
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    for m in chosen:
        shutil.copy(DSB / "images" / f"{m['id']}.png", data / "images")
        shutil.copy(DSB / "masks" / f"{m['id']}.tif", data / "masks")
    (data / "manifest.json").write_text(json.dumps(chosen))
    study = work / "study"
    _loop("init", study)
    (study / "loop.toml").write_text(GOLDEN_TOML)
    _loop(
        "ingest",
        study,
        data / "images",
        "--masks",
        data / "masks",
        "--metadata",
        data / "manifest.json",
    )
    _loop("split", study, "--test", 8, "--initial", 6, "--seed", 0)
    embedded = "LABEL_STUDIO_URL" not in os.environ
    if embedded:
        _loop("labelstudio", "start", study)
    try:
        _loop("run", study, "--rounds", 2, "--annotators", "simulated")
    finally:
        if embedded:
            _loop("labelstudio", "stop", study)
    return dump(study / "loop.db")


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise SystemExit("usage: python -m bench.golden OUT.json")
    with tempfile.TemporaryDirectory() as tmp:
        result = golden_run(Path(tmp))
    # the data root is stored in the images table: name it the same in every run
    text = json.dumps(result, indent=1, default=str).replace(tmp, "<work>")
    Path(argv[0]).write_text(text + "\n")
    print(
        f"golden run dumped to {argv[0]}: "
        + ", ".join(f"{t} {len(r)}" for t, r in sorted(result.items())),
        file=sys.stderr,
    )


if __name__ == "__main__":
    main(sys.argv[1:])

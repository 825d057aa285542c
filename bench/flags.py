"""Do the doubtful objects point at the model's mistakes? ``python -m bench.flags STUDY``.

For every test image of a segmentation study (ground truth, never annotated), the study's
model (or ``--model ID``) segments it as for a pre-annotation; each predicted object has its
own flow error, and those above a threshold are the ones shown to annotators as
``<object>?`` (``labels.unsure_flow_error``). A predicted object is wrong when no reference
object matches it at IoU >= 0.5 (:func:`loop.core.metrics.flagged_errors`). For each
threshold: the share of objects flagged, the share of the wrong objects among the flagged
(precision), the share of the wrong objects that are flagged (recall), and the lift: recall
over the share flagged (1.0: the flag is no better than flagging objects at random). Overall
and per value of the study's first group. Writes ``--out`` (JSON) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

THRESHOLDS = (0.1, 0.2, 0.3)


def _rates(counts: dict) -> dict:
    objects, wrong, flagged, hit = (
        counts[k] for k in ("objects", "wrong", "flagged", "wrong_flagged")
    )
    share = flagged / objects if objects else None
    recall = hit / wrong if wrong else None
    return {
        **counts,
        "share_flagged": None if share is None else round(share, 3),
        "precision": round(hit / flagged, 3) if flagged else None,
        "recall": None if recall is None else round(recall, 3),
        "lift": round(recall / share, 2) if recall is not None and share else None,
    }


def bench_flags(study_path: Path, *, model_id: int | None = None, thresholds=THRESHOLDS) -> dict:
    """The flag's figures on the test split of the study at ``study_path``."""
    from loop.core.images import read_image
    from loop.core.metrics import flagged_errors
    from loop.learn.labels import _mask_of, image_path
    from loop.learn.registry import load_model, model_row
    from loop.models.family import family
    from loop.rounds.steps import unsure_objects
    from loop.store import meta_column
    from loop.study import open_study

    with open_study(study_path) as study:
        row = model_row(study, model_id)
        model, adapter = load_model(study, row, None), family(row["kind"])
        key = study.config.groups[0] if study.config.groups else None
        totals: dict = {}
        images = study.store.images("split = 'test'")
        for i, image in enumerate(images):
            truth = study.store.truth(image["id"])
            if truth is None or truth["kind"] != "mask":
                continue
            (out,) = adapter.predict(
                model, [read_image(image_path(image))], config=study.config.model
            )
            reference = _mask_of(study, image, truth)
            group = f"{key}={image.get(meta_column(key))}" if key else None
            for t in thresholds:
                flagged = unsure_objects(out.masks, out.object_errors, t)
                counts = flagged_errors(reference, out.masks, flagged)
                for where in ("all", group):
                    if where is None:
                        continue
                    into = totals.setdefault(str(t), {}).setdefault(where, {})
                    for k, v in counts.items():
                        into[k] = into.get(k, 0) + v
            print(f"bench: flags {i + 1}/{len(images)}", file=sys.stderr)
        return {
            "study": str(study_path),
            "model_id": row["id"],
            "test_images": len(images),
            "thresholds": {
                t: {where: _rates(c) for where, c in groups.items()} for t, groups in totals.items()
            },
        }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", type=Path)
    parser.add_argument("--model", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    from bench.timing import environment

    result = {"env": environment(), **bench_flags(args.study, model_id=args.model)}
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    print("| threshold | group | objects | flagged | wrong | precision | recall | lift |")
    print("|---|---|---|---|---|---|---|---|")
    for t, groups in result["thresholds"].items():
        for where, r in groups.items():
            print(
                f"| {t} | {where} | {r['objects']} | {r['share_flagged']} | {r['wrong']} | "
                f"{r['precision']} | {r['recall']} | {r['lift']} |"
            )


if __name__ == "__main__":
    main()

"""Conversions between our labels and Label Studio annotation results, and the label configs.

Instance segmentation: every object is its own ``brushlabels`` region (brush masks round-trip
exactly, polygons do not). Classification: one ``choices`` result. These functions are pure
(no server, no SDK) and have golden JSON tests in ``tests/data/``.
"""

from __future__ import annotations

import re
from xml.sax.saxutils import quoteattr

import numpy as np

from connectors.brush_rle import RLEError, alpha_runs, encode_labels
from connectors.ls_boxes import BOX_TAG, boxes_to_results, check_size
from loop.errors import MalformedAnnotation
from loop.types import LabelSpec, Prediction, ToolAnnotation, ToolTask, ToolTaskState

IMAGE_TAG = "image"
BRUSH_TAG = "objects"
CHOICE_TAG = "class"
OBJECT_LABEL = "Object"
KEY_FIELD = "loop_task_id"
"""The task data field that holds our task id (to find a task again after a crash)."""


def label_config(control: str, classes=(), *, labels: LabelSpec | None = None, keep=()) -> str:
    """The Label Studio labeling config of a project whose annotators use ``control``.

    Parameters
    ----------
    control : {"BrushLabels", "RectangleLabels", "Choices"}
        The Label Studio control a study's task is annotated with
        (:attr:`loop.tasks.base.Task.control`): brushed objects, boxes, or one class per
        image.
    classes : sequence of str
        The choices (``Choices``).
    labels : LabelSpec, optional
        The objects' name and colour, and the name and colour of the model's doubtful objects
        (``BrushLabels``, ``RectangleLabels``); default: ``Object`` in red.
    keep : sequence of str
        Label values the project already has (annotations made with them must stay valid):
        kept, in grey, after the study's own.

    Raises
    ------
    MalformedAnnotation
        For a control this connector does not write, or ``Choices`` without classes.
    """
    if control in ("BrushLabels", "RectangleLabels", "KeyPointLabels"):
        spec = labels or LabelSpec()
        values = [(spec.name, spec.colour), *spec.others]
        if spec.unsure_name:
            values.append((spec.unsure_name, spec.unsure_colour))
        values += [(v, "#9e9e9e") for v in keep if v not in {name for name, _ in values}]
        lines = "".join(
            f"    <Label value={quoteattr(name)} background={quoteattr(colour)}/>\n"
            for name, colour in values
        )
        tag = BRUSH_TAG if control == "BrushLabels" else BOX_TAG  # boxes or points
        return (
            "<View>\n"
            f'  <Image name="{IMAGE_TAG}" value="$image" zoom="true" zoomControl="true"/>\n'
            f'  <{control} name="{tag}" toName="{IMAGE_TAG}">\n'
            f"{lines}"
            f"  </{control}>\n"
            "</View>\n"
        )
    if control != "Choices":
        raise MalformedAnnotation(
            f"no labeling config for the control {control!r}: this connector writes "
            "BrushLabels, RectangleLabels, KeyPointLabels and Choices"
        )
    if not classes:
        raise MalformedAnnotation(
            "a classification project needs its classes: ingest images with classes first"
        )
    choices = "\n".join(f"    <Choice value={quoteattr(c)}/>" for c in classes)
    return (
        "<View>\n"
        f'  <Image name="{IMAGE_TAG}" value="$image" zoom="true"/>\n'
        f'  <Choices name="{CHOICE_TAG}" toName="{IMAGE_TAG}" choice="single" showInline="true">\n'
        f"{choices}\n"
        "  </Choices>\n"
        "</View>\n"
    )


def label_values(config: str | None) -> list[str]:
    """The ``Label`` values of a labeling config, in order.

    >>> label_values('<View><BrushLabels><Label value="Object" background="#f00"/>'
    ...              '<Label value="a &amp; b"/></BrushLabels></View>')
    ['Object', 'a & b']
    """
    from xml.sax.saxutils import unescape

    found = re.findall(r'<Label\s[^>]*value="([^"]*)"', config or "")
    return [unescape(v, {"&quot;": '"'}) for v in found]


def mask_to_results(
    mask: np.ndarray,
    *,
    prefix: str = "obj",
    label: str = OBJECT_LABEL,
    unsure=(),
    unsure_label: str | None = None,
    names=(),
) -> list[dict]:
    """A label image as Label Studio results, one brush region per object (or per class).

    Parameters
    ----------
    mask : ndarray of shape (M, N)
        Integer labels, 0 = background.
    prefix : str
        Region ids are ``<prefix><label>``.
    label : str
        The regions' label.
    unsure : iterable of int
        Objects labelled ``unsure_label`` instead (when one is given).
    names : sequence of str
        A class map: the label of value ``k`` is ``names[k]`` (one region per class).
    """
    mask = np.asarray(mask)
    height, width = mask.shape
    doubtful = set(unsure) if unsure_label else set()
    return [
        {
            "id": f"{prefix}{value}",
            "from_name": BRUSH_TAG,
            "to_name": IMAGE_TAG,
            "type": "brushlabels",
            "origin": "manual",
            "original_width": width,
            "original_height": height,
            "image_rotation": 0,
            "value": {
                "format": "rle",
                "rle": rle,
                "brushlabels": [
                    names[value] if names else unsure_label if value in doubtful else label
                ],
            },
        }
        for value, rle in encode_labels(mask).items()
    ]


OTHER_REGIONS = {"polygon", "rectangle", "ellipse", "keypoint", "brush"}
"""Region types of tools other than brush labels (``...labels`` types are regions too)."""


def results_to_mask(results: list, shape: tuple[int, int]) -> np.ndarray:
    """Label Studio results back to a label image (:func:`results_to_objects` without the
    names); raises MalformedAnnotation as it does."""
    return results_to_objects(results, shape)[0]


def results_to_objects(results: list, shape: tuple[int, int]) -> tuple[np.ndarray, list[str]]:
    """Label Studio results back to a label image and the label name of each object: brush
    regions become objects 1..K in order (where regions overlap, the later one wins), and
    ``names[k - 1]`` is the first label of the region that made object ``k``. Results that are
    not regions (text, choices, relations) are ignored.

    Raises
    ------
    MalformedAnnotation
        When a brush region cannot be decoded or was drawn on an image of another size, or a
        region was drawn with another tool (polygon, rectangle, ...): it would count as no
        object at all.
    """
    if not isinstance(results, list):
        raise MalformedAnnotation(f"annotation result must be a list, got {type(results).__name__}")
    mask = np.zeros(shape, dtype=np.int32)
    flat = mask.reshape(-1)  # a view: runs are in raster order
    label, names = 0, []
    for item in results:
        if not isinstance(item, dict):
            continue
        kind = str(item.get("type", ""))
        lowered = kind.lower()  # "PolygonLabels" is a polygon too, not nothing
        if kind != "brushlabels" and (lowered.endswith("labels") or lowered in OTHER_REGIONS):
            raise MalformedAnnotation(
                f"region {item.get('id')} is a {kind} region; this study takes brush masks "
                "(type brushlabels) only: redraw it with the brush"
            )
        if kind != "brushlabels":
            continue
        check_size(item, shape)
        value = item.get("value") or {}
        if value.get("format", "rle") != "rle" or "rle" not in value:
            raise MalformedAnnotation(f"region {item.get('id')} has no RLE brush data")
        try:
            runs = alpha_runs(value["rle"], shape)
        except (RLEError, TypeError, ValueError) as exc:
            raise MalformedAnnotation(f"region {item.get('id')}: {exc}") from exc
        if runs:
            label += 1
            for start, stop in runs:
                flat[start:stop] = label
            labels = value.get("brushlabels") or [""]
            names.append(str(labels[0]))
    return mask, names


def class_to_results(klass: str) -> list[dict]:
    """A class as a Label Studio ``choices`` result."""
    return [
        {
            "id": "class",
            "from_name": CHOICE_TAG,
            "to_name": IMAGE_TAG,
            "type": "choices",
            "origin": "manual",
            "value": {"choices": [klass]},
        }
    ]


def results_to_class(results: list) -> str | None:
    """The chosen class of a ``choices`` result (``None`` when nothing was chosen).

    Raises
    ------
    MalformedAnnotation
        When several classes were chosen or the payload is not a list of results.
    """
    if not isinstance(results, list):
        raise MalformedAnnotation(f"annotation result must be a list, got {type(results).__name__}")
    for item in results:
        kind = str(item.get("type", "")) if isinstance(item, dict) else ""
        if kind != "choices" and kind.lower() == "choices":
            raise MalformedAnnotation(f"result {item.get('id')} is typed {kind!r}, not 'choices'")
    chosen = [
        c
        for item in results
        if isinstance(item, dict) and item.get("type") == "choices"
        for c in (item.get("value") or {}).get("choices", [])
    ]
    if len(chosen) > 1:
        raise MalformedAnnotation(f"several classes chosen ({', '.join(chosen)}); choose one")
    return chosen[0] if chosen else None


def task_payload(task: ToolTask, labels: LabelSpec) -> dict:
    """The JSON that imports ``task`` into a project: its data (the image, our key, the image
    id and name, its info; the reviewer and tile when it has them) and its predictions, drawn
    with ``labels``."""
    data = {
        "image": task.image_url,
        KEY_FIELD: task.key,
        "loop_image_id": task.image_id,
        "name": task.name,
        **task.info,
    }
    payload: dict = {"data": data}
    if task.reviewer is not None:
        data["reviewer"] = task.reviewer
    if task.tile is not None:
        data["loop_tile"] = list(task.tile)
    if task.predictions:
        payload["predictions"] = [
            prediction_payload(p, f"pred{i}-", labels) for i, p in enumerate(task.predictions)
        ]
    return payload


def prediction_payload(p: Prediction, prefix: str, labels: LabelSpec) -> dict:
    """One pre-annotation of a task: boxes, brush regions (an object label image, each region
    id starting with ``prefix``) or a class, with its model version and score."""
    if p.boxes is not None:
        b = p.boxes
        result = boxes_to_results(
            b.boxes, b.names, b.shape, prefix=prefix, scores=b.scores, points=b.points
        )
    elif p.mask is not None:
        result = mask_to_results(
            p.mask,
            prefix=prefix,
            label=labels.name,
            unsure=p.unsure,
            unsure_label=labels.unsure_name,
            names=p.labels,
        )
    else:
        result = class_to_results(p.klass)
    prediction = {"result": result, "model_version": p.model_version}
    if p.score is not None:
        prediction["score"] = float(p.score)
    return prediction


def task_state(task: dict) -> ToolTaskState:
    """A task of the tool's listing (or detail) with its annotations, as the loop sees it."""
    return ToolTaskState(
        external_id=str(task["id"]),
        key=(task.get("data") or {}).get(KEY_FIELD),
        annotations=[
            ToolAnnotation(
                task_external_id=str(task["id"]),
                external_id=str(a["id"]),
                user_external_id=str(_user_id(a.get("completed_by"))),
                result=a.get("result") or [],
                cancelled=bool(a.get("was_cancelled")),
                lead_time=a.get("lead_time"),
                updated_at=a.get("updated_at"),
                editor_external_id=_editor(a.get("updated_by")),
            )
            for a in task.get("annotations") or []
        ],
    )


def _editor(updated_by) -> str | None:
    """The id of who saved an annotation last: an id, a user object, or (in the Data
    Manager's serializer) ``[{"user_id": id}]``; None when the tool does not say."""
    if isinstance(updated_by, list):
        updated_by = updated_by[0].get("user_id") if updated_by else None
    user = _user_id(updated_by)
    return None if user is None else str(user)


def _user_id(user):
    """``completed_by`` is an id in task lists but the user object in one task's detail."""
    return user.get("id") if isinstance(user, dict) else user


def same_config(a: str | None, b: str) -> bool:
    """Two label configs equal up to whitespace between tags."""
    if a is None:
        return False

    def norm(text: str) -> str:
        return re.sub(r">\s+<", "><", text.strip())

    return norm(a) == norm(b)

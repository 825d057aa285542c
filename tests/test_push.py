"""What annotators are told and shown of a study (loop/annotate/push.py, without a server): the
project's title and instructions, the objects' labels, each task's data. Pushing to a real
Label Studio is in test_annotation.py."""

import json

import pytest

from loop.annotate.push import instructions, label_spec, project_title, task_info
from loop.data.ingest import ingest
from loop.store import scores
from loop.study import init_study, open_study


def test_title_and_instructions_say_the_study_and_the_task(tmp_path):
    with init_study(tmp_path / "a-rather-long-study-folder-name-for-nuclei") as study:
        title = project_title(study)
        assert title.startswith("a-rather-long-st: nucleus outlines (") and len(title) <= 43
        assert len(f"{title} review") <= 50  # Label Studio's limit, review project included
        text = instructions(study)
        assert "Outline every nucleus" in text and '"nucleus?"' in text
        assert "objects that touch are separate regions" in text  # no made-up plural
        assert "outline every nucleus that touches the frame, whole" in text  # region tasks
        assert instructions(study, "adjudicate").startswith("Study a-rather-long")
        spec = label_spec(study)
        assert (spec.name, spec.unsure_name, spec.colour) == ("nucleus", "nucleus?", "#00c8ff")
    init_study(tmp_path / "cells").close()
    (tmp_path / "cells" / "loop.toml").write_text(
        'task = "segmentation"\n[labels]\nobject = "cell"\nunsure_flow_error = 0.0\n'
    )
    with open_study(tmp_path / "cells") as study:
        assert label_spec(study).unsure_name is None  # no doubtful label when flagging is off
        assert "cell outlines" in project_title(study) and "?" not in instructions(study)
    with init_study(tmp_path / "wbc", task="classification") as study:
        assert "image classes" in project_title(study)
        assert "Choose the one class" in instructions(study)


def test_task_data_says_why_an_image_was_chosen(tmp_path, nuclei_folder):
    init_study(tmp_path / "s").close()
    (tmp_path / "s" / "loop.toml").write_text('task = "segmentation"\ngroups = ["modality"]\n')
    with open_study(tmp_path / "s") as study:
        ingest(study, nuclei_folder / "images", masks=nuclei_folder / "masks")
        study.store.db["images"].add_column("meta_modality", str)
        first, second = study.store.images()[:2]
        study.store.db["images"].update(first["id"], {"meta_modality": "tissue"})
        first = study.store.image(first["id"])
        assert task_info(study, first, {"round": 2}) == {"round": 2, "modality": "tissue"}
        row = {"model_id": None, "strategy": "auto=typiclust", "k": 2, "seed": 0}
        ids = json.dumps([second["id"], first["id"]])
        scores.record_selection(study.store, {**row, "image_ids": ids, "scores": "[0.9, null]"})
        info = task_info(study, first, {"round": 2})
        assert info == {"round": 2, "strategy": "auto=typiclust", "rank": 2, "modality": "tissue"}
        second_info = task_info(study, second, {"round": None})
        assert second_info["score"] == 0.9 and "round" not in second_info


def test_the_picture_follows_the_display_settings(tmp_path):
    """A two-channel 16-bit TIFF: by default a green + magenta composite; with
    ``[display] channels = [1]`` the second channel in grey, in a file of its own (the tasks
    pushed before keep theirs); a channel the image lacks is refused with the fix."""
    import numpy as np
    import tifffile
    from PIL import Image

    from loop.annotate.push import display_png
    from loop.errors import ConfigError

    (tmp_path / "in").mkdir()
    pixels = np.zeros((40, 40, 2), np.uint16)
    pixels[5:15, 5:15, 0] = 40000  # a nucleus in channel 0
    pixels[20:35, 20:35, 1] = 900  # a dimmer cell in channel 1
    tifffile.imwrite(tmp_path / "in" / "two.tif", pixels)
    with init_study(tmp_path / "s") as study:
        ingest(study, tmp_path / "in")
        (image,) = study.store.images()
        default = np.asarray(Image.open(study.path / display_png(study, image)))
    assert default.shape == (40, 40, 3)
    assert default[10, 10].tolist() == [0, 255, 0] and default[30, 30].tolist() == [255, 0, 255]
    toml = study.path / "loop.toml"
    toml.write_text(toml.read_text().replace("channels = []", "channels = [1]", 1))
    with open_study(tmp_path / "s") as study:
        rel = display_png(study, image)
        grey = np.asarray(Image.open(study.path / rel))
        assert grey.shape == (40, 40) and grey[30, 30] == 255 and grey[10, 10] == 0
        assert (study.path / display_png(study, image, tile=(0, 0, 20, 20))).is_file()
    toml.write_text(toml.read_text().replace("channels = [1]", "channels = [3]", 1))
    with open_study(tmp_path / "s") as study:
        with pytest.raises(ConfigError, match=r"has 2 channel\(s\).*set \[display\] channels"):
            display_png(study, image)

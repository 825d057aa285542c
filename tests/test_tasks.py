"""The registered tasks (loop/tasks/): each names what every stage needs, and what it names
exists (a model family, a Label Studio control, strategies that parse)."""

import pytest

from connectors.ls_results import label_config
from loop.config_parse import parse_config
from loop.config_template import default_toml
from loop.config_view import LabelsConfig
from loop.core.strategies import available, parse
from loop.errors import ConfigError
from loop.models.family import FAMILIES, family_for_task
from loop.reports.html import FIGURE_NAMES
from loop.tasks import REGISTERED, TASKS, described, names, task_of

TASK_LIST = list(REGISTERED.values())


def test_an_unknown_task_is_one_clear_error():
    with pytest.raises(ConfigError, match="task = 'tracking': choose one of segmentation"):
        task_of("tracking")
    assert names(lambda t: False) == "no"


@pytest.mark.parametrize("task", TASK_LIST, ids=TASKS)
def test_what_a_task_names_exists(task):
    assert task.family in FAMILIES and family_for_task(task.name).kind == task.family
    assert FAMILIES[task.family].label_kind == task.label_kind
    assert "<View>" in label_config(task.control, ["a", "b"])
    assert task.shortlist_by in task.measures
    assert task.measures[task.shortlist_by].tier == "forward"
    for name in (task.default_strategy, *task.auto):
        parse(name, task.name)  # raises UnknownStrategy when a task names one that is not
    assert set(task.measures) <= set(available(task.name))
    assert ("random@region" in available(task.name)) == task.regions
    assert task.instructions(_Labels()) and task.what_for("nucleus")
    assert f'task = "{task.name}"' in default_toml(task.name)
    assert f"{task.name} ({task.summary})" in described()
    assert task.legend.startswith("score") and task.model_figure in FIGURE_NAMES


def _Labels():
    return LabelsConfig(
        object="nucleus", others=("mitosis",), unsure_flow_error=0.5, classes=("bg", "nucleus")
    )


def test_segmentation_instructions_follow_the_labels():
    text = task_of("segmentation").instructions(_Labels())
    assert "Outline every nucleus" in text and '"mitosis" its own label' in text
    assert 'labelled "nucleus?"' in text


def test_semantic_instructions_name_the_classes_to_paint():
    text = task_of("semantic").instructions(_Labels())
    assert "Paint each nucleus pixel" in text and "leave bg unpainted" in text


def test_a_semantic_study_without_classes_is_one_clear_error():
    with pytest.raises(ConfigError, match='task = "semantic" needs its pixel classes'):
        parse_config('task = "semantic"')


def test_semantic_ground_truth_is_checked_against_the_class_table():
    import numpy as np

    count = task_of("semantic").count_truth
    three = LabelsConfig(classes=("bg", "nucleus", "boundary"))
    assert count(np.array([[0, 1], [2, 1]]), three) == 3
    with pytest.raises(ValueError, match=r"values 7 are not classes: expected 0..2"):
        count(np.array([[0, 7]]), three)
    ignoring = LabelsConfig(classes=("bg", "nucleus"), ignore=9)
    assert count(np.array([[0, 9]]), ignoring) == 1

"""The registered tasks (loop/tasks/): each names what every stage needs, and what it names
exists (a model family, a Label Studio control, strategies that parse)."""

import pytest

from connectors.ls_results import label_config
from loop.config_template import default_toml
from loop.core.strategies import available, parse
from loop.errors import ConfigError
from loop.models.family import FAMILIES, family_for_task
from loop.tasks import REGISTERED, TASKS, described, names, task_of

TASK_LIST = list(REGISTERED.values())


def test_an_unknown_task_is_one_clear_error():
    with pytest.raises(ConfigError, match="task = 'detection': choose one of segmentation"):
        task_of("detection")
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


class _Labels:
    object = "nucleus"
    others = ("mitosis",)
    unsure_flow_error = 0.5


def test_segmentation_instructions_follow_the_labels():
    text = task_of("segmentation").instructions(_Labels())
    assert "Outline every nucleus" in text and '"mitosis" its own label' in text
    assert 'labelled "nucleus?"' in text

import dataclasses
import json
import re
from pathlib import Path

import pytest

from loop.config import (
    IngestConfig,
    ModelConfig,
    ScoreConfig,
    SplitConfig,
    StudyConfig,
)
from loop.config_parse import load_config, parse_config, resolved
from loop.config_template import default_toml
from loop.config_view import LabelsConfig, other_labels
from loop.errors import ConfigError
from loop.tasks import task_of


@pytest.mark.parametrize("task", ["segmentation", "classification", "semantic"])
def test_default_toml_parses_to_the_defaults(task):
    config = parse_config(default_toml(task))
    classes = task_of(task).classes
    assert config == StudyConfig(task=task, labels=LabelsConfig(classes=classes))
    assert config.split == SplitConfig()
    assert config.ingest == IngestConfig()


def test_values_are_read_and_lists_become_tuples():
    config = parse_config(
        'task = "classification"\ngroups = ["batch"]\n[split]\ntest = 20\nstratify = ["class"]\n'
    )
    assert config.task == "classification"
    assert config.groups == ("batch",)
    assert config.split.test == 20.0
    assert config.split.stratify == ("class",)


def test_unknown_key_is_an_error_naming_the_known_ones():
    with pytest.raises(
        ConfigError,
        match=r"\[split\] unknown key\(s\) tset; known keys: initial, seed, stratify, test",
    ):
        parse_config("[split]\ntset = 0.2\n")


def test_unknown_top_level_key():
    with pytest.raises(ConfigError, match="unknown key.*modle"):
        parse_config('modle = "x"\n')


def test_wrong_type_is_an_error():
    with pytest.raises(ConfigError, match=r"split.seed = 'zero': expected int, got str"):
        parse_config('[split]\nseed = "zero"\n')


def test_bool_is_not_an_int():
    with pytest.raises(ConfigError, match="expected int, got bool"):
        parse_config("[split]\nseed = true\n")


def test_table_expected():
    with pytest.raises(ConfigError, match=r"\[split\] must be a table"):
        parse_config("split = 3\n")


def test_list_expected():
    with pytest.raises(ConfigError, match="groups must be a list"):
        parse_config('groups = "batch"\n')


def test_bad_task():
    with pytest.raises(
        ConfigError, match="task = 'tracking': choose one of segmentation, classification"
    ):
        parse_config('task = "tracking"\n')
    with pytest.raises(ConfigError, match="choose one of"):
        default_toml("tracking")


def test_fraction_or_count():
    with pytest.raises(
        ConfigError, match=r"split.test = 2.5: give a fraction in \[0, 1\) or a whole count"
    ):
        SplitConfig(test=2.5)
    with pytest.raises(ConfigError, match="split.initial = -1"):
        SplitConfig(initial=-1)


def test_tile_settings():
    assert parse_config("").rounds.tiling() is None
    tiling = parse_config("[rounds]\ntile = 256\ntile_above = 600\n").rounds.tiling()
    assert (tiling.tile, tiling.above, tiling.overlap) == (256, 600, 32)
    with pytest.raises(
        ConfigError, match=r"\[rounds\] tile settings: --tile-overlap 200: give 0..128"
    ):
        parse_config("[rounds]\ntile = 256\ntile_overlap = 200\n")


def test_invalid_toml():
    with pytest.raises(ConfigError, match="is not valid TOML"):
        parse_config("task = \n")


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="no config file at .*create the study with `loop init`"):
        load_config(tmp_path / "loop.toml")


@pytest.mark.parametrize("name", ["nuclei.toml", "wbc.toml"])
def test_shipped_configs_load(name):
    from conftest import REPO

    config = load_config(REPO / "configs" / name)
    assert config.task in ("segmentation", "classification")


@pytest.mark.parametrize(
    "text,message",
    [
        ("[model]\nnbase = [3, 8, 16]", r"model.nbase = \[3, 8, 16\]: give at least 3 widths"),
        ("[model]\nnbase = [2, 8]", "give at least 3 widths starting with 2"),
        ("[model]\ncrop = 40", "model.crop = 40: give a multiple of 16"),
        ("[model]\nval_fraction = 0.6", r"model.val_fraction = 0.6: give a value in \[0, 0.5\)"),
        ("[model]\nmin_steps = 10\nmax_steps = 5", "model.min_steps = 10 > model.max_steps = 5"),
        ("[classifier]\nval_fraction = -0.1", "classifier.val_fraction = -0.1"),
        ("[score]\nstrategy = 3", "expected str"),
    ],
)
def test_model_sections_are_validated(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(text)


@pytest.mark.parametrize(
    "name, task", [("nuclei.toml", "segmentation"), ("wbc.toml", "classification")]
)
def test_shipped_configs_start_a_study(tmp_path, name, task):
    from typer.testing import CliRunner

    from loop.cli import app
    from loop.study import open_study

    source = Path(__file__).resolve().parents[1] / "configs" / name
    result = CliRunner().invoke(app, ["init", str(tmp_path / "s"), "--config", str(source)])
    assert result.exit_code == 0, result.output
    with open_study(tmp_path / "s") as study:
        assert study.config.task == task
        assert study.config.rounds.overlap == 3
        assert study.config.score.strategy.endswith("+diversity")


def test_init_refuses_a_bad_config(tmp_path):
    from loop.study import init_study

    bad = tmp_path / "bad.toml"
    bad.write_text('task = "segmentation"\n[rounds]\nfusion = "average"\n')
    with pytest.raises(ConfigError, match="rounds.fusion = 'average'"):
        init_study(tmp_path / "s", config=bad)
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize(
    "text, message",
    [
        ("[rounds]\noverlap = 0", "rounds.overlap = 0"),
        ("[rounds]\nmin_agreement = 1.5", "rounds.min_agreement = 1.5"),
        ('[rounds]\nannotators = ["a", "b"]\nprofiles = ["careful"]', "rounds.profiles has 1"),
        ("[rounds]\npoll_seconds = 0", "rounds.poll_seconds = 0"),
        ("[rounds]\nfull_pull_minutes = -1", "rounds.full_pull_minutes = -1"),
        ("[score]\nk = 0", "score.k = 0"),
        ("[score]\npool_sample = -1", "score.pool_sample = -1"),
    ],
)
def test_round_settings_are_checked(text, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config(text)


def test_noise_profiles_of_one_s_own():
    from loop.noise import PROFILES, NoiseProfile

    config = parse_config(
        "[rounds]\nannotators = ['ann', 'ben']\nprofiles = ['resident', 'sloppy']\n"
        "[noise.resident]\njitter = [1, 3]\nmiss_small = 0.2\nfalse_positive = 0.03\n"
        "[noise.sloppy]\nmerge = 0.5\n"
    )
    assert config.noise["resident"] == NoiseProfile(
        jitter=(1, 3), miss_small=0.2, false_positive=0.03
    )
    assert config.noise["sloppy"].merge == 0.5 and config.noise["sloppy"] != PROFILES["sloppy"]
    # the commented example of the default loop.toml parses when uncommented
    example = default_toml("segmentation").split("# [noise.resident]")[1]
    lines = "\n".join(line.removeprefix("# ") for line in example.strip().splitlines())
    assert parse_config("[noise.resident]\n" + lines).noise["resident"].jitter == (1, 3)


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "[noise.mine]\nmis = 0.1",
            "[noise.mine] unknown key(s) mis; known keys: accept, false_positive",
        ),
        ("[noise.mine]\nmiss = 2", "[noise.mine] miss = 2.0: give a probability in 0..1"),
        ("[noise.mine]\njitter = 2", "noise.mine.jitter must be a list"),
        ("noise = 3", "[noise] must be a table of tables"),
        (
            "[rounds]\nannotators = ['a']\nprofiles = ['resident']",
            "rounds.profiles: unknown noise profile 'resident'; choose one of average, careful, "
            "perfect, sloppy, or define it as [noise.resident]",
        ),
    ],
)
def test_noise_settings_are_checked(text, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config(text)


def test_labels_section_is_checked():
    config = parse_config('[labels]\nobject = "cell"\ncolour = "#112233"\n')
    assert (config.labels.object, config.labels.colour) == ("cell", "#112233")
    with pytest.raises(ConfigError, match=r"labels.colour = 'red': write a colour as #rrggbb"):
        parse_config('[labels]\ncolour = "red"\n')
    with pytest.raises(ConfigError, match="not ending in '\\?'"):
        parse_config('[labels]\nobject = "cell?"\n')
    with pytest.raises(
        ConfigError, match="unsure_flow_error = -1.0: give a value from 0.0 to 100.0"
    ):
        parse_config("[labels]\nunsure_flow_error = -1.0\n")
    others = parse_config('[labels]\nothers = ["mitotic figure", "apoptotic"]\n').labels
    assert other_labels(others) == (("mitotic figure", "#ff4fd8"), ("apoptotic", "#7cff4f"))
    for text, message in (
        ('others = ["nucleus"]', "differ from each other and from labels.object ('nucleus')"),
        ('others = ["a", "a"]', "differ from each other"),
        ('others = ["a?"]', "not ending in '?'"),
        ('others = ["a"]\nother_colours = ["#000000", "#ffffff"]', "2 colour(s) for 1 name"),
        ('others = ["a"]\nother_colours = ["black"]', "'black': write a colour as #rrggbb"),
    ):
        with pytest.raises(ConfigError, match=re.escape(message)):
            parse_config(f"[labels]\n{text}\n")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("channels = [0, 0]", "give distinct channel numbers, 0 for the first"),
        ("channels = [-1]", "give distinct channel numbers"),
        ("channels = [0, 1, 2, 3, 4, 5, 6]", "show at most 6 channels at once"),
        ("channels = [0, 1, 2, 3]", "shows 4 channels: give display.colours"),
        ('channels = [0]\ncolours = ["blue"]', "'blue': write a colour as #rrggbb"),
        ('colours = ["#0000ff"]', "1 colour(s) for 0 channel(s) in display.channels"),
        ("lower = 50.0\nupper = 10.0", "0 <= lower < upper <= 100"),
    ],
)
def test_display_section_is_checked(text, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config(f"[display]\n{text}\n")


def test_display_section_is_read():
    config = parse_config('[display]\nchannels = [2, 0]\ncolours = ["#0000ff", "#ffff00"]\n')
    assert (config.display.channels, config.display.colours) == ((2, 0), ("#0000ff", "#ffff00"))
    colours = '["#ff0000", "#00ff00", "#0000ff", "#ffffff"]'
    four = parse_config(f"[display]\nchannels = [0, 1, 2, 3]\ncolours = {colours}\n")
    assert len(four.display.colours) == 4


def test_predict_tiling_is_checked():
    assert ModelConfig(predict_tile=512, predict_tile_above=1024).tiling().tile == 512
    with pytest.raises(ConfigError, match=r"model.predict_tile = 10, .*at least 32 pixels"):
        ModelConfig(predict_tile=10)
    with pytest.raises(ConfigError, match=r"predict_tile_overlap = 2000: give 0..1024"):
        ModelConfig(predict_tile_overlap=2000)


def test_cluster_section_is_checked():
    config = parse_config('[cluster]\nworkers = 4\nscheduler = "tcp://head:8786"\n')
    assert (config.cluster.workers, config.cluster.scheduler) == (4, "tcp://head:8786")
    with pytest.raises(ConfigError, match="cluster.workers = 0: give a value from 1 to 1024"):
        parse_config("[cluster]\nworkers = 0\n")
    with pytest.raises(ConfigError, match="cluster.scheduler = 'head:8786': give the address"):
        parse_config('[cluster]\nscheduler = "head:8786"\n')


def test_the_resolved_config_has_every_default_and_changes_with_one():
    base = parse_config("[score]\nk = 4\n")
    text = resolved(base)
    assert json.loads(text)["score"]["k"] == 4
    assert json.loads(text)["score"]["coverage_until"] == ScoreConfig().coverage_until
    assert resolved(parse_config("[score]\nk = 4\n")) == text
    # the same text under another default (as after a release that changed it)
    moved = dataclasses.replace(base, score=dataclasses.replace(base.score, coverage_until=16))
    assert resolved(moved) != text


@pytest.mark.parametrize(
    "text, message",
    [
        ("[model]\nbatch_size = 0", r"model.batch_size = 0: give a value from 1 to 4096"),
        ("[model]\ncrop = 100000000000", r"model.crop = 100000000000: give a multiple of 16"),
        ("[model]\nlearning_rate = nan", r"model.learning_rate = nan: give a finite number"),
        ("[model]\nlearning_rate = 0.0", r"model.learning_rate = 0.0: give a value from"),
        ("[model]\nnbase = [2, -8, 16]", r"each from 1 to 1024"),
        ("[model]\nnbase = [2, 8, 1000000]", r"each from 1 to 1024"),
        ("[model]\nepochs = -100", r"model.epochs = -100: give a value from 1"),
        ("[model]\nkeep_tolerance = nan", r"model.keep_tolerance = nan: give a finite"),
        ("[model]\npredict_tile = 100000000", r"model.predict_tile = 100000000"),
        ("[model]\nseed = -1", r"model.seed = -1"),
        ("[model]\nimages_per_pass = -1", r"model.images_per_pass = -1: give a value from 0"),
        ("[rounds]\nfull_pull_minutes = inf", r"rounds.full_pull_minutes = inf: give a finite"),
        ("[rounds]\nfull_pull_minutes = nan", r"rounds.full_pull_minutes = nan: give a finite"),
        ("[rounds]\npoll_seconds = nan", r"rounds.poll_seconds = nan: give a finite"),
        ("[rounds]\npoll_seconds = 0", r"rounds.poll_seconds = 0.0: give a value from 0.1"),
        ("[rounds]\nmin_agreement = -5", r"rounds.min_agreement = -5.0: give a value from 0"),
        ("[cluster]\nworkers = 100000", r"cluster.workers = 100000: give a value from 1 to 1024"),
        ("[score]\nchunk = 0", r"score.chunk = 0: give a value from 1"),
        ("[classifier]\ncommittee = 100000", r"classifier.committee = 100000"),
        ("[augment]\nprobability = nan", r"augment.probability = nan"),
        ("[labels]\nunsure_flow_error = inf", r"labels.unsure_flow_error = inf"),
        ("[split]\ntest = 1e300", r"split.test = 1e\+300: give a value from 0"),
        ("[noise.mine]\nseconds_per_object = inf", r"seconds_per_object = inf"),
        ("[noise.mine]\njitter = [0, 100000]", r"jitter = \[0, 100000\]"),
        ("[model]\nwarm_fraction = 99999999999999999999", r"too large a number|not valid TOML"),
        ("[effort]\ndrawn = -1", r"effort.drawn = -1.0: give a value from 0.0 to 1000.0"),
        ("[effort]\nsplit = nan", r"effort.split = nan: give a finite number"),
        ("[regions]\nsize = 8", r"regions.size = 8: give a value from 16 to 4096"),
    ],
)
def test_every_value_is_finite_and_in_range(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(text)


def test_a_file_that_is_not_utf8_is_one_clear_error(tmp_path):
    path = tmp_path / "loop.toml"
    path.write_bytes(b'task = "segmentation"\n# caf\xe9\n')
    with pytest.raises(ConfigError, match=r"is not UTF-8 text \(byte 27\)"):
        load_config(path)


def test_arrays_nested_past_reason_are_one_clear_error():
    text = "groups = " + "[" * 8000 + "]" * 8000  # 16 KB
    with pytest.raises(ConfigError, match="nests arrays or tables too deeply"):
        parse_config(text)
    shallow = "groups = " + "[" * 50 + "]" * 50
    with pytest.raises(ConfigError, match=r"groups\[\] = \[\[\[\[\.\.\.\]\]\]\]: expected str"):
        parse_config(shallow)


# --- property-based: any TOML either gives valid settings or one ConfigError --------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


def _sections() -> dict[str, list[str]]:
    """The known keys of each section (top level under "")."""
    out = {"": []}
    default = StudyConfig()
    for f in dataclasses.fields(StudyConfig):
        value = getattr(default, f.name)
        if dataclasses.is_dataclass(value):
            out[f.name] = [g.name for g in dataclasses.fields(value)]
        else:
            out[""].append(f.name)
    return out


SECTIONS = _sections()


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value != value:
            return "nan"
        if value in (float("inf"), float("-inf")):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    return "[" + ", ".join(_toml_value(v) for v in value) + "]"


SCALARS = (
    st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.booleans()
    | st.text(max_size=12)
    | st.sampled_from(["segmentation", "classification", "auto", "majority", "logistic"])
)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4), max_leaves=8)


@st.composite
def study_tomls(draw):
    lines, tables = [], {}
    for _ in range(draw(st.integers(0, 6))):
        section = draw(st.sampled_from(sorted(SECTIONS)))
        key = draw(st.sampled_from(SECTIONS[section]) if SECTIONS[section] else st.just("task"))
        if draw(st.integers(0, 9)) == 0:
            key = draw(st.from_regex(r"[a-z_]{1,8}", fullmatch=True))  # unknown keys too
        tables.setdefault(section, {})[key] = draw(VALUES)
    for section, items in sorted(tables.items()):  # top-level keys first
        if section:
            lines.append(f"[{section}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in items.items()]
    return "\n".join(lines)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(study_tomls())
def test_any_study_toml_gives_settings_or_one_config_error(text):
    try:
        config = parse_config(text)
    except ConfigError as exc:
        assert str(exc).startswith("loop.toml")
        assert "\n" not in str(exc) or "not valid TOML" in str(exc)
        assert len(str(exc)) < 2000
    else:
        assert isinstance(config, StudyConfig)
        assert parse_config(text) == config


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_any_text_gives_settings_or_one_config_error(text):
    try:
        parse_config(text)
    except ConfigError:
        pass


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ({"classes": ("only",)}, "give 2 to 64 distinct class names"),
        ({"classes": ("a", "a")}, "give 2 to 64 distinct class names"),
        ({"classes": ("a", "b?")}, "must not be empty or end in '\\?'"),
        ({"classes": ("a", "b"), "class_colours": ("#ffffff",)}, "1 colour.s. for 2 class"),
        ({"classes": ("a", "b"), "class_colours": ("red", "#000000")}, "write a colour as"),
        ({"classes": ("a", "b"), "ignore": 1}, "labels.ignore = 1 is a class index"),
        ({"classes": ("a", "b"), "ignore": -5}, "labels.ignore"),
        ({"classes": ("a", "b"), "masks": "polygons"}, "choose classes or instances"),
    ],
)
def test_bad_pixel_classes_are_clear_errors(labels, message):
    with pytest.raises(ConfigError, match=message):
        LabelsConfig(**labels)


def test_class_colours_default_to_grey_background_then_the_object_colours():
    from loop.config_view import class_labels

    three = class_labels(LabelsConfig(classes=("bg", "a", "b")))
    assert [c for _, c in three] == ["#808080", "#00c8ff", "#ff4fd8"]
    mine = class_labels(LabelsConfig(classes=("bg", "a"), class_colours=("#000000", "#ffffff")))
    assert mine == (("bg", "#000000"), ("a", "#ffffff"))


def test_a_class_table_gives_one_distinct_value_per_class():
    LabelsConfig(classes=("a", "b"), class_values=(0, 255))
    for values in ((0,), (0, 0), (0, 9)):
        with pytest.raises(ConfigError, match="give one distinct value per class"):
            LabelsConfig(classes=("a", "b"), class_values=values, ignore=9)

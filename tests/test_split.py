import pytest

from loop.data.ingest import ingest
from loop.data.split import allocate, parse_where, split_study
from loop.errors import SplitError


@pytest.fixture
def seg(seg_study, nuclei_folder):
    ingest(
        seg_study,
        nuclei_folder / "images",
        masks=nuclei_folder / "masks",
        metadata=nuclei_folder / "meta.csv",
    )
    return seg_study


def splits(study):
    return {r["name"]: r["split"] for r in study.store.images()}


def test_counts_and_determinism(seg):
    result = split_study(seg, test=2, initial=2, seed=3)
    assert result.counts == {"pool": 2, "labeled": 2, "test": 2, "excluded": 0}
    first = splits(seg)
    split_study(seg, test=2, initial=2, seed=3)
    assert splits(seg) == first
    split_study(seg, test=2, initial=2, seed=4)
    assert sorted(splits(seg).values()).count("test") == 2


def test_fractions_and_where(seg):
    result = split_study(seg, test=0.5, initial=0.5, where=["instrument=scopeA"])
    # 3 scopeA images: test round(1.5) = 2, initial round(0.5 * 1) = 1 (half rounds up)
    assert result.counts == {"pool": 0, "labeled": 1, "test": 2, "excluded": 3}
    by_name = splits(seg)
    assert {by_name[f"img{i}"] for i in (1, 3, 5)} == {"excluded"}


def test_stratified_by_group(seg):
    result = split_study(seg, test=2, initial=0, stratify=("instrument",))
    assert result.by_stratum == {
        "scopeA": {"pool": 2, "labeled": 0, "test": 1},
        "scopeB": {"pool": 2, "labeled": 0, "test": 1},
    }


def test_classification_stratifies_by_class(cls_study, class_folder):
    ingest(cls_study, class_folder, classes_from_folders=True)
    result = split_study(cls_study, test=0.5, initial=0)
    assert result.stratify == ("class",)
    assert {k: v["test"] for k, v in result.by_stratum.items()} == {
        "Eosinophil": 2,
        "Lymphocyte": 2,
        "Monocyte": 2,
        "Neutrophil": 3,
    }


def test_not_equal_filter(seg):
    result = split_study(seg, test=1, where=["instrument!=scopeA", "batch=1"])
    assert result.counts["excluded"] == 4


def test_images_without_truth_stay_in_pool(seg_study, nuclei_folder):
    ingest(seg_study, nuclei_folder / "images")  # no masks
    with pytest.raises(
        SplitError, match="asked for 1 test images but only 0 eligible images with ground truth"
    ):
        split_study(seg_study, test=1)
    result = split_study(seg_study, test=0)
    assert result.counts["pool"] == 6


def test_errors(seg):
    with pytest.raises(SplitError, match="write KEY=VALUE or KEY!=VALUE"):
        parse_where(["modality"])
    with pytest.raises(SplitError, match="unknown image column 'colour'; known: .*instrument"):
        split_study(seg, test=1, where=["colour=red"])
    with pytest.raises(SplitError, match="no image matches instrument=scopeZ"):
        split_study(seg, test=1, where=["instrument=scopeZ"])
    with pytest.raises(SplitError, match="asked for 9 test images but only 6"):
        split_study(seg, test=9)
    with pytest.raises(SplitError, match="asked for 5 initial images but only 4"):
        split_study(seg, test=2, initial=5)


def test_refuses_to_resplit_once_annotation_began(seg):
    image = seg.store.images()[0]
    seg.store.db["tasks"].insert({"image_id": image["id"], "arm": "main", "status": "open"})
    with pytest.raises(SplitError, match="already has 1 pushed tasks .*--force"):
        split_study(seg, test=1)
    assert split_study(seg, test=1, force=True).counts["test"] == 1


def test_allocate_is_exact():
    assert allocate({"a": 6, "b": 3, "c": 1}, 5) == {"a": 3, "b": 2, "c": 0}
    assert sum(allocate({"a": 1, "b": 1, "c": 1}, 2).values()) == 2
    assert allocate({"a": 0}, 0) == {"a": 0}


def test_test_where_holds_out_the_images_that_match_not_a_draw(seg):
    result = split_study(seg, test=0, initial=1, test_where=["instrument=scopeB"])
    by_name = splits(seg)
    assert {by_name[f"img{i}"] for i in (1, 3, 5)} == {"test"}
    assert result.counts["test"] == 3 and result.counts["labeled"] == 1
    with pytest.raises(SplitError, match="no eligible image with ground truth matches"):
        split_study(seg, test=0, test_where=["instrument=scopeZ"])

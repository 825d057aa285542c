import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from label_studio_sdk.converter.brush import decode_rle as sdk_decode
from label_studio_sdk.converter.brush import mask2rle as sdk_encode

from connectors.brush_rle import RLEError, alpha_runs, decode_rle, encode_labels, encode_mask


@settings(max_examples=60, deadline=None)
@given(arrays(np.bool_, st.tuples(st.integers(1, 40), st.integers(1, 40))))
def test_round_trip_is_exact(mask):
    assert np.array_equal(decode_rle(encode_mask(mask), mask.shape) > 0, mask)


@settings(max_examples=30, deadline=None)
@given(arrays(np.bool_, st.tuples(st.integers(1, 30), st.integers(1, 30))))
def test_sdk_decodes_ours_and_we_decode_the_sdks(mask):
    ours = encode_mask(mask)
    assert np.array_equal(sdk_decode(ours).reshape(*mask.shape, 4)[..., 3] > 0, mask)
    theirs = sdk_encode(mask.astype(np.uint8) * 255)
    assert np.array_equal(decode_rle(theirs, mask.shape) > 0, mask)


def _from_runs(runs, shape):
    flat = np.zeros(shape[0] * shape[1], bool)
    for start, stop in runs:
        flat[start:stop] = True
    return flat.reshape(shape)


@settings(max_examples=40, deadline=None)
@given(
    arrays(np.int8, st.tuples(st.integers(1, 30), st.integers(1, 30)), elements=st.integers(0, 4))
)
def test_labels_at_once_are_the_masks_one_by_one_and_runs_are_the_region(labels):
    encoded = encode_labels(labels)
    assert sorted(encoded) == sorted(int(v) for v in np.unique(labels) if v)
    for value, rle in encoded.items():
        assert rle == encode_mask(labels == value)
        assert np.array_equal(
            _from_runs(alpha_runs(rle, labels.shape), labels.shape), labels == value
        )
        # the SDK's encoding (literal chunks, other run sizes) gives the same region
        theirs = sdk_encode((labels == value).astype(np.uint8) * 255)
        assert np.array_equal(
            _from_runs(alpha_runs(theirs, labels.shape), labels.shape), labels == value
        )
    with pytest.raises(ValueError, match="labels must be 2-D"):
        encode_labels(labels[None])


def test_long_runs_and_empty_and_full():
    for mask in (np.zeros((300, 300), bool), np.ones((300, 300), bool)):
        assert np.array_equal(decode_rle(encode_mask(mask), mask.shape) > 0, mask)
    mask = np.zeros((400, 400), bool)
    mask[390:, 5:9] = True  # a run longer than 2**16 values before it
    assert np.array_equal(sdk_decode(encode_mask(mask)).reshape(400, 400, 4)[..., 3] > 0, mask)


def test_errors():
    rle = encode_mask(np.eye(8, dtype=bool))
    with pytest.raises(RLEError, match="holds 256 values, expected 9x8x4 = 288"):
        decode_rle(rle, (9, 8))
    with pytest.raises(RLEError, match="truncated"):
        decode_rle(rle[:6], (8, 8))
    with pytest.raises(ValueError, match="mask must be 2-D"):
        encode_mask(np.zeros((2, 2, 2)))


def test_hostile_sizes_are_refused_before_allocating():
    with pytest.raises(RLEError, match="must be a list of bytes, got int"):
        decode_rle(10**9, (8, 8))  # bytearray(10**9) would be a gigabyte of zeros
    with pytest.raises(RLEError, match=r"longer than any encoding of a 8x8 image \(1639 bytes"):
        decode_rle([0] * 2000, (8, 8))
    with pytest.raises(RLEError, match="not bytes 0..255"):
        decode_rle([300, 1, 2], (8, 8))

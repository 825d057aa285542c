"""Uncertainty measures of a Cellpose network's outputs (loop/models/cellpose_measures.py)."""

import numpy as np
import pytest

from loop.models import cellpose_measures as cm


def test_tta_disagreement_of_identical_and_different_masks():
    a = np.zeros((8, 8), int)
    a[1:4, 1:4] = 1
    assert cm.tta_disagreement([a, a, a]) == (0.0, 0.0)
    b = np.zeros_like(a)
    iou, cv = cm.tta_disagreement([a, b])
    assert iou == 1.0 and cv == pytest.approx(1.0)


def test_foreground_entropy():
    assert cm.foreground_entropy(np.full((4, 4), -20.0)) == 0.0
    assert cm.foreground_entropy(np.zeros((4, 4))) == pytest.approx(1.0)

"""Consensus of several annotators, as plain functions on arrays: a majority vote of classes,
and instance masks fused by pixel majority or binary STAPLE (agreement measures:
:mod:`loop.core.agreement`).

References
----------
Warfield, S. K., Zou, K. H., Wells, W. M. (2004). Simultaneous truth and performance level
estimation (STAPLE). IEEE Trans. Med. Imaging 23, 903-921.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from loop.core.agreement import check_shapes, match


def majority_vote(labels: Sequence, *, tie: str = "none"):
    """The most frequent label (``None`` values ignored).

    Parameters
    ----------
    tie : {"none", "first"}
        On a tie: return ``None`` (send to adjudication), or the tied label given first.
    """
    values = [v for v in labels if v is not None]
    if not values:
        return None
    counts = Counter(values).most_common()
    if len(counts) > 1 and counts[0][1] == counts[1][1]:
        if tie == "first":
            best = counts[0][1]
            return next(v for v in values if Counter(values)[v] == best)
        return None
    return counts[0][0]


# --- several annotators of one image -----------------------------------------------------


def staple(masks: Sequence[np.ndarray], *, iterations: int = 50, tol: float = 1e-6) -> np.ndarray:
    """Binary STAPLE: the probability that each pixel is foreground, estimated jointly with
    each annotator's sensitivity and specificity by expectation-maximisation.

    Warfield, S. K., Zou, K. H., Wells, W. M. (2004). Simultaneous truth and performance level
    estimation (STAPLE). IEEE Trans. Med. Imaging 23(7), 903-921.

    Parameters
    ----------
    masks : sequence of ndarray of shape (M, N)
        Non-zero = foreground, one per annotator.

    Returns
    -------
    ndarray of shape (M, N), dtype float64
        Posterior foreground probability (threshold at 0.5 for a consensus).
    """
    d = np.stack([np.asarray(m) > 0 for m in masks]).reshape(len(masks), -1).astype(float)
    prior = np.clip(d.mean(), 1e-6, 1 - 1e-6)
    p = np.full(len(masks), 0.99)  # sensitivities
    q = np.full(len(masks), 0.99)  # specificities
    w = d.mean(axis=0)
    for _ in range(iterations):
        log_a = np.log(prior) + (d * np.log(p)[:, None] + (1 - d) * np.log(1 - p)[:, None]).sum(0)
        log_b = np.log(1 - prior) + ((1 - d) * np.log(q)[:, None] + d * np.log(1 - q)[:, None]).sum(
            0
        )
        w_new = 1 / (1 + np.exp(np.clip(log_b - log_a, -500, 500)))
        p = np.clip((d * w_new).sum(1) / max(w_new.sum(), 1e-12), 1e-6, 1 - 1e-6)
        q = np.clip(((1 - d) * (1 - w_new)).sum(1) / max((1 - w_new).sum(), 1e-12), 1e-6, 1 - 1e-6)
        if np.max(np.abs(w_new - w)) < tol:
            w = w_new
            break
        w = w_new
    return w.reshape(np.asarray(masks[0]).shape)


def consensus_mask(masks: Sequence[np.ndarray], *, method: str = "majority") -> np.ndarray:
    """Fuse several annotators' instance masks of one image into one instance mask.

    1. Foreground: pixels marked by at least half of the annotators (``method="majority"``)
       or with STAPLE posterior >= 0.5 (``method="staple"``).
    2. Objects: the first annotator's objects seed clusters; every other annotator's objects
       join the cluster they match best (Hungarian, IoU >= 0.5), or start a new one. A cluster
       seen by at least half of the annotators becomes an object: the pixels of the
       consensus foreground covered by at least half of its members (each pixel goes to the
       cluster covering it most often).

    Parameters
    ----------
    masks : sequence of ndarray of shape (M, N)
        Instance label images, one per annotator (all the same shape).

    Returns
    -------
    ndarray of shape (M, N), dtype int32
        Objects 1..K.
    """
    masks = [np.asarray(m) for m in masks]
    if not masks:
        raise ValueError("no annotation to fuse")
    for m in masks[1:]:
        check_shapes(masks[0], m)
    n = len(masks)
    need = n / 2
    if method == "majority":
        foreground = np.stack([m > 0 for m in masks]).sum(0) >= need
    elif method == "staple":
        foreground = staple(masks) >= 0.5
    else:
        raise ValueError(f"unknown consensus method {method!r}; choose majority or staple")
    shape = masks[0].shape
    clusters: list[list[np.ndarray]] = []  # member objects, as sorted flat pixel indices
    unions: list[np.ndarray] = []  # each cluster's union of members, for matching
    for m in masks:
        objects = _objects(m)
        if unions and objects:
            flat = m.ravel()
            labels = {v: k for k, v in enumerate(objects)}
            values = np.array(list(objects))
            inter = np.zeros((len(objects), len(unions)))
            for c, union in enumerate(unions):
                hit, n_hit = np.unique(flat[union], return_counts=True)
                for v, k in zip(hit, n_hit):
                    if v in labels:
                        inter[labels[v], c] = k
            areas = np.array([objects[v].size for v in values])[:, None]
            sizes = np.array([u.size for u in unions])[None, :]
            rows, cols, ious = match(inter / (areas + sizes - inter))
            joined = {int(r): int(c) for r, c, iou in zip(rows, cols, ious) if iou >= 0.5}
        else:
            joined = {}
        for k, pixels in enumerate(objects.values()):
            if k in joined:
                c = joined[k]
                clusters[c].append(pixels)
                unions[c] = np.union1d(unions[c], pixels)
            else:
                clusters.append([pixels])
                unions.append(pixels)
    kept = [members for members in clusters if len(members) >= need]
    out = np.zeros(shape, dtype=np.int32).ravel()
    # (pixel, cluster, votes) for pixels covered by >= half of a kept cluster's members
    pixel_ids, cluster_ids, vote_counts = [], [], []
    for c, members in enumerate(kept):
        pixels, votes = np.unique(np.concatenate(members), return_counts=True)
        ok = votes >= len(members) / 2
        pixel_ids.append(pixels[ok])
        cluster_ids.append(np.full(ok.sum(), c + 1))
        vote_counts.append(votes[ok])
    if kept:
        pix, clu, vot = (np.concatenate(x) for x in (pixel_ids, cluster_ids, vote_counts))
        order = np.lexsort((-vot, pix))  # by pixel, most votes first
        pix, clu = pix[order], clu[order]
        first = np.r_[True, pix[1:] != pix[:-1]]
        out[pix[first]] = clu[first]
    out[~foreground.ravel()] = 0
    out = out.reshape(shape)
    # relabel 1..K without gaps (a cluster can lose all its pixels to neighbours)
    present = np.unique(out[out > 0])
    remap = np.zeros(len(kept) + 1, dtype=np.int32)
    remap[present] = np.arange(1, present.size + 1)
    return remap[out]


def _objects(mask: np.ndarray) -> dict[int, np.ndarray]:
    """Label -> sorted flat pixel indices, for every object of a label image."""
    flat = mask.ravel()
    order = np.argsort(flat, kind="stable")
    values, starts = np.unique(flat[order], return_index=True)
    ends = np.r_[starts[1:], flat.size]
    return {int(v): order[a:b] for v, a, b in zip(values, starts, ends) if v != 0}

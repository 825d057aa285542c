"""What the loop needs from a kind of model (:class:`ModelFamily`) and what a family gives
back: an image's prediction (:class:`Output`), a training recipe (:class:`Recipe`) and a
trained model (:class:`Fitted`). The adapters live one per file (:mod:`.cellpose_family`,
:mod:`.classifier_family`) and are registered in :mod:`loop.models.family`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from loop.config import StudyConfig


@dataclass
class Output:
    """One image's prediction by a model of any family.

    Attributes
    ----------
    masks : ndarray of shape (M, N), optional
        Instance labels, 0 = background (segmentation).
    cellprob : ndarray of shape (M, N), optional
        Cell-probability logits (segmentation).
    klass : str, optional
        The most probable class (classification).
    confidence : float, optional
        Its probability (classification).
    measures : dict of str to float
        Per-image measures that strategies rank by (``flow_error``, ``entropy``, ...).
    embedding : ndarray of shape (D,)
        The image's feature vector for diversity and coverage.
    object_errors : ndarray of shape (K,), optional
        Per object of ``masks`` (labels in ascending order), how doubtful the model is of it
        (Cellpose: the object's own flow error).
    classmap : ndarray of shape (M, N), optional
        The class index of each pixel (semantic segmentation).
    probability : ndarray of shape (M, N), optional
        The probability of each pixel's class (semantic segmentation).
    boxes : ndarray of shape (D, 4), optional
        Detected boxes ``x1, y1, x2, y2`` in pixels, every one from ``detection.min_score``
        on (detection); ``box_classes`` (D,) their class indices, ``box_scores`` (D,) their
        scores, ``box_threshold`` the score from which a box is a detection.
    """

    measures: dict[str, float] = field(default_factory=dict)
    embedding: np.ndarray = field(default_factory=lambda: np.zeros(1, np.float32))
    masks: np.ndarray | None = None
    cellprob: np.ndarray | None = None
    klass: str | None = None
    confidence: float | None = None
    object_errors: np.ndarray | None = None
    classmap: np.ndarray | None = None
    probability: np.ndarray | None = None
    boxes: np.ndarray | None = None
    box_classes: np.ndarray | None = None
    box_scores: np.ndarray | None = None
    box_threshold: float | None = None


@dataclass(frozen=True)
class Recipe:
    """How a model is trained, decided before any pixel is read.

    Attributes
    ----------
    params : dict
        Recorded in the model's row (``models.params``).
    digest : dict
        With the labels, what identifies the training: the same digest and parent give the
        recorded model back instead of training again.
    seed : int
    steps : int
        The optimisation budget (0 for a family without steps).
    warm : bool
        Starts from the parent model.
    extend : bool
        Train the parent further even on the labels it was trained on.
    """

    params: dict
    digest: dict
    seed: int
    steps: int = 0
    warm: bool = False
    extend: bool = False


@dataclass
class Fitted:
    """A trained model object, its loss curve and the device it was trained on; ``on_device``:
    the settings changed to fill that device (:func:`loop.models.devices.on_device`)."""

    model: Any
    losses: list[float]
    device: str
    on_device: dict = field(default_factory=dict)


class ModelFamily(Protocol):
    """What the loop needs from a kind of model."""

    kind: str  # the ``models.kind`` column

    def settings(self, config: StudyConfig) -> Any:
        """The family's section of a study's configuration (what ``predict`` takes)."""

    def load(self, path: Path, *, sha256: str, gpu: bool | None) -> Any:
        """The model object of a file the study recorded."""

    def predict(
        self, model: Any, images: Sequence[np.ndarray], *, config: Any, tta: bool = False
    ) -> list[Output]:
        """One :class:`Output` per image (shapes (M, N) or (M, N, C))."""

    def shared(self, model: Any, config: Any, shape: tuple[int, int] | None = None) -> int:
        """How many images of ``shape`` (M, N; None: of a small size) :meth:`predict` gains
        from taking at once (e.g. sharing a GPU's forward passes); 1: none, the caller may
        give them one at a time and keep less in memory."""

    def measure(self, model: Any, images: Sequence[np.ndarray], *, config: Any) -> list[Output]:
        """The cheap measures (tier ``forward`` of :data:`loop.core.strategies.TASK_MEASURES`)
        and the embedding of each image, as fast as the family allows: what ranks the whole
        pool. ``masks`` and ``klass`` may be None."""

    # --- evaluation -----------------------------------------------------------------------
    def score(self, output: Output, truth: Any, *, config: StudyConfig) -> dict:
        """One test image's figures: its prediction ``output`` against its ``truth`` (what
        trains the family: a label image, a class, a class map)."""

    def summarize(
        self, per_image: Sequence[dict], groups: Sequence[str] | None = None, *, config
    ) -> dict:
        """The figures of a set of images from :meth:`score`'s, overall and, with ``groups``
        (one per image), per group (``per_group``)."""

    # --- training -------------------------------------------------------------------------
    label_kind: str  # what trains it: "mask" (instance labels), "class" or "classmap"
    suffix: str  # of its model files

    def recipe(
        self,
        config: StudyConfig,
        *,
        n_train: int,
        seed: int | None,
        steps: int | None,
        parent: dict | None,
        extend: bool,
    ) -> Recipe:
        """How a model would be trained on ``n_train`` images (with ``parent``, the previous
        model's row, as a possible warm start): what is recorded and what identifies it."""

    def fit(
        self,
        images: list[np.ndarray],
        targets: list,
        *,
        config: StudyConfig,
        recipe: Recipe,
        parent_path: Path | None,
        gpu: bool | None,
        classes: Sequence[str],
        progress: Callable[[str, int, int], None],
    ) -> Fitted:
        """Train on ``images`` with their ``targets`` (label images or classes), from the
        model at ``parent_path`` when the recipe is warm."""

    def validate(
        self, model: Any, pairs: Iterable[tuple[np.ndarray, Any]], *, config: StudyConfig
    ) -> tuple[float, list[float]]:
        """(summary, per-image scores) of ``model`` on (image, target) pairs: the validation
        figure the gate compares, and the per-image values its paired test uses."""

    def blind(
        self, model: Any, pairs: Iterable[tuple[np.ndarray, Any]], *, config: StudyConfig
    ) -> bool:
        """Whether ``model`` finds nothing on (image, target) pairs of its own training set
        that have something to find: a collapsed fit, to be trained again."""

    def save(self, fitted: Fitted, path: Path, *, title: str) -> Path:
        """Write the trained model to ``path`` (atomically), with whatever the family draws
        of its training (``title``: what it was trained on); returns the path written."""


def n_steps(n_images: int, config, *, warm: bool) -> int:
    """Optimisation steps for ``n_images``: ``config.epochs`` passes of ``config.batch_size``
    crops, within ``min_steps``..``max_steps``, ``warm_fraction`` of that when warm (the
    ``[model]`` and ``[unet]`` sections alike).

    >>> from loop.config import ModelConfig
    >>> n_steps(40, ModelConfig(), warm=False), n_steps(40, ModelConfig(), warm=True)
    (500, 200)
    """
    steps = config.epochs * math.ceil(n_images / config.batch_size)
    steps = min(max(steps, config.min_steps), config.max_steps)
    return max(1, round(steps * config.warm_fraction)) if warm else steps


def step_recipe(
    section, augment, *, n_train: int, seed, steps, parent, extend: bool, **extra
) -> Recipe:
    """The recipe of a family trained in steps from a config section (``[model]``,
    ``[unet]``: ``seed``, ``warm_start`` and the fields of :func:`n_steps`): warm from
    ``parent`` when the section says so or ``extend`` asks, the step budget from the images
    unless ``steps`` is given; ``extra`` (e.g. the classes) is recorded and identifies it too.
    """
    seed = section.seed if seed is None else seed
    warm = bool(parent and (section.warm_start or extend))
    budget = steps or n_steps(n_train, section, warm=warm)
    settings = {"config": asdict(section), "augment": asdict(augment), **extra, "seed": seed}
    return Recipe(
        params={**settings, "steps": budget, "parent": parent["id"] if warm else None},
        digest={**settings, "steps": steps},
        seed=seed,
        steps=budget,
        warm=warm,
        extend=extend,
    )


@dataclass
class TrainResult:
    """What a run of :func:`train_steps` gives: the mean loss of each chunk of steps (1/50 of
    them) and the seconds it took."""

    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0


def mean_loss(losses: list) -> float:
    """The mean of a chunk of steps' losses (scalar tensors, still on their device): read
    from the device once per chunk, not once per step (a GPU then never waits for the CPU
    between steps), and averaged in float64 as the values themselves.

    >>> import torch
    >>> mean_loss([torch.tensor(1.0), torch.tensor(2.0)])
    1.5
    """
    import torch

    return float(np.mean(torch.stack(losses).double().cpu().numpy()))


def train_steps(net, step_loss: Callable[[], Any], *, steps: int, section, rng, progress=None):
    """Train ``net`` in place for ``steps`` steps (AdamW at ``section.learning_rate`` and
    ``weight_decay``, cosine decay to 5% of the rate), seeded by ``rng`` (the torch seed is
    drawn from it first); ``step_loss()`` samples a batch and returns its loss (a scalar
    tensor). The U-Net's and the detector's loop (:class:`TrainResult`)."""
    import time

    import torch

    started = time.perf_counter()
    torch.manual_seed(int(rng.integers(2**31)))
    optimiser = torch.optim.AdamW(
        net.parameters(), lr=section.learning_rate, weight_decay=section.weight_decay
    )
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimiser, T_max=max(1, steps), eta_min=section.learning_rate * 0.05
    )
    chunk = max(1, steps // 50)
    losses, running = [], []
    net.train()
    for step in range(steps):
        loss = step_loss()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        running.append(loss.detach())  # no float(): it would wait for the GPU every step
        if len(running) == chunk or step == steps - 1:
            losses.append(mean_loss(running))
            running = []
        if progress:
            progress(step + 1)
    net.eval()
    return TrainResult(losses, time.perf_counter() - started)

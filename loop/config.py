"""Study configuration: ``loop.toml`` parsed once into frozen, validated dataclasses.

Unknown keys are errors (a typo must not be silently ignored), and so are values of the
wrong type or out of range. :func:`loop.config_template.default_toml` writes the commented
file that ``loop init`` puts in a new study; :func:`loop.config_parse.load_config` reads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from loop.config_checks import SEED, all_in_range, check_val_fraction, in_range  # noqa: F401
from loop.config_detection import DetectionConfig
from loop.config_model import INVERT_MODES, MODEL_BOUNDS, ModelConfig  # noqa: F401
from loop.config_unet import UNetConfig
from loop.config_view import DisplayConfig, LabelsConfig
from loop.core.effort import EffortWeights
from loop.errors import ConfigError
from loop.noise import PROFILES, NoiseProfile
from loop.tasks import TASKS, task_of

"""Seeds numpy, torch and Cellpose all accept."""


@dataclass(frozen=True)
class SplitConfig:
    """Defaults of ``loop split`` (command-line options override them)."""

    test: float = 0.3
    """Held-out test set: a fraction (< 1) of the eligible images, or a count (>= 1)."""
    initial: float = 0.0
    """Initial labeled set, taken from what is left: a fraction (< 1) or a count (>= 1)."""
    seed: int = 0
    stratify: tuple[str, ...] = ()
    """Metadata columns to stratify by; empty = by class (classification) or not at all."""

    def __post_init__(self):
        all_in_range("split", self, {"test": (0, 10**9), "initial": (0, 10**9), "seed": SEED})
        for name in ("test", "initial"):
            value = getattr(self, name)
            if value < 0 or (value >= 1 and value != int(value)):
                raise ConfigError(
                    f"split.{name} = {value}: give a fraction in [0, 1) or a whole count >= 1"
                )


@dataclass(frozen=True)
class IngestConfig:
    """How ``loop ingest`` finds images, masks and sidecars."""

    extensions: tuple[str, ...] = (".tif", ".tiff", ".png", ".jpg", ".jpeg")
    mask_suffixes: tuple[str, ...] = ("", "_mask", "_masks", "_cp_masks", "_label", "_labels")
    """A mask of image ``a.png`` is ``<masks>/a<suffix>.<tif|tiff|png>``, first match wins."""


@dataclass(frozen=True)
class AugmentConfig:
    """Training-time augmentation (both model families), drawn from the training ``rng``."""

    flips: bool = True
    """Random flips and transposes (the 8 symmetries of the square)."""
    intensity: bool = True
    """Brightness, contrast and gamma."""
    noise: bool = True
    """Microscopy noise: Poisson (shot) noise at a random photon level, plus Gaussian."""
    blur: bool = True
    """Gaussian blur of random width (focus changes)."""
    elastic: bool = False
    """Elastic deformation (slower: flows are recomputed per crop)."""
    probability: float = 0.5
    """Chance that each photometric transform is applied to a crop."""

    def __post_init__(self):
        in_range("augment.probability", self.probability, 0, 1)


CLASSIFIERS = ("logistic", "random-forest")


@dataclass(frozen=True)
class ClassifierConfig:
    """The whole-image classifier of ``loop train`` (task = classification)."""

    estimator: str = "logistic"
    """logistic (scaled features + logistic regression) or random-forest."""
    committee: int = 5
    """Members of the bootstrap committee used by the ``committee`` strategy."""
    augment_copies: int = 0
    """Augmented copies of each training image added to the training features."""
    image_size: int = 64
    """Images are resized to this square before texture features are computed."""
    val_fraction: float = 0.1
    keep_tolerance: float = 0.02
    seed: int = 0

    def __post_init__(self):
        if self.estimator not in CLASSIFIERS:
            raise ConfigError(
                f"classifier.estimator = {self.estimator!r}: choose one of {', '.join(CLASSIFIERS)}"
            )
        check_val_fraction("classifier", self.val_fraction)
        bounds = {
            "committee": (1, 100),
            "augment_copies": (0, 100),
            "image_size": (8, 1024),
            "keep_tolerance": (-1.0, 1.0),  # below 0: a new model must gain that much
            "seed": SEED,
        }
        all_in_range("classifier", self, bounds)


@dataclass(frozen=True)
class ScoreConfig:
    """Defaults of ``loop score`` (command-line options override them)."""

    strategy: str = ""
    """A name from `loop strategies`; empty = the task's default."""
    k: int = 16
    shortlist: int = 4
    """Diversity and expensive scores look at the top ``shortlist * k`` images only."""
    chunk: int = 32
    """Images per chunk while scoring (memory stays flat whatever the pool size)."""
    pool_sample: int = 0
    """Measure a seeded random subset of this many pool images per model (0 = all of them)."""
    coverage_until: int = 32
    """The ``auto`` strategy picks typical images (coverage) while fewer than this many images
    are labeled, then uncertain ones. 32: on the mixed-modality bench the switch at 16 labels
    lost to staying with coverage on every seed (docs: explanation/benchmarks.md)."""

    def __post_init__(self):
        bounds = {
            "k": (1, 10**6),
            "shortlist": (1, 1000),
            "chunk": (1, 10**4),
            "coverage_until": (1, 10**9),
            "pool_sample": (0, 10**9),
        }
        all_in_range("score", self, bounds)


MAX_WORKERS = 1024
"""More worker processes than any one scheduler here is meant to feed."""


@dataclass(frozen=True)
class ClusterConfig:
    """Where ``loop score`` (the rounds' too), ``predict`` and ``measure`` run by default;
    their ``--workers`` / ``--scheduler`` override it."""

    workers: int = 1
    """Worker processes of a local Dask cluster; 1: in the command's own process."""
    scheduler: str = ""
    """Address of a running Dask scheduler (``tcp://host:8786``); empty: none."""

    def __post_init__(self):
        in_range("cluster.workers", self.workers, 1, MAX_WORKERS, hint=" (1: no cluster)")
        if self.scheduler and "://" not in self.scheduler:
            raise ConfigError(
                f"cluster.scheduler = {self.scheduler!r}: give the address with its protocol, "
                "e.g. tcp://head-node:8786"
            )


@dataclass(frozen=True)
class RegionsConfig:
    """Regions, the unit of the ``@region`` strategies (``loop strategies``): an expert
    annotates a square of the image where the model is unsure, not the whole image."""

    size: int = 128
    """Side of the square regions an image is cut into, in pixels."""
    per_image: int = 2
    """The most regions of one image in a batch (the batch spreads over the pool)."""
    context: int = 32
    """Pixels of the image shown around a region in its task (the frame marks the region)."""

    def __post_init__(self):
        bounds = {"size": (16, 4096), "per_image": (1, 1000), "context": (0, 1024)}
        all_in_range("regions", self, bounds)


FUSIONS = ("majority", "staple")


@dataclass(frozen=True)
class RoundsConfig:
    """How `loop round` and `loop run` annotate: overlap, consensus, waiting for experts."""

    overlap: int = 3
    """Distinct annotators per task."""
    min_agreement: float = 0.5
    """Tasks below this mean pairwise agreement go to adjudication instead of training."""
    min_annotations: int = 2
    """Valid annotations a consensus needs (at most the task's overlap); fewer: it waits."""
    fusion: str = "majority"
    """Consensus of instance masks: majority or staple."""
    annotators: tuple[str, ...] = ("alice", "bob", "carol")
    """Simulated annotators (`--annotators simulated`)."""
    profiles: tuple[str, ...] = ()
    """Their noise profiles by position (perfect, careful, average, sloppy); empty = careful,
    average, sloppy."""
    poll_seconds: float = 30.0
    """How often `loop run` checks Label Studio while it waits for human annotators."""
    full_pull_minutes: float = 60.0
    """Pulls ask Label Studio only for tasks updated since the last one; the first pull after
    this many minutes since the last full one reads every task (it catches what a bulk action
    in the Data Manager changed without touching the tasks' update time). 0: always all."""
    final_train: bool = True
    """After the last round, train and evaluate once more on every label (the last batch)."""
    tile: int = 0
    """Annotate images larger than ``tile_above`` as tiles of at most this side; 0 = whole."""
    tile_above: int = 512
    """Only images with a side longer than this are tiled."""
    tile_overlap: int = 32
    """Pixels neighbouring tiles share (more than most objects' diameter)."""

    def tiling(self):
        """The :class:`~loop.core.tiles.Tiling` of the rounds' pushes, or None (whole images)."""
        from loop.core.tiles import Tiling

        if not self.tile:
            return None
        return Tiling(tile=self.tile, above=self.tile_above, overlap=self.tile_overlap)

    def __post_init__(self):
        bounds = {
            "overlap": (1, 100),
            "min_agreement": (0.0, 1.0),
            "min_annotations": (1, 100),
            "poll_seconds": (0.1, 86400.0),
            "full_pull_minutes": (0.0, 525600.0),  # a year
            "tile": (0, 65536),
            "tile_above": (0, 10**6),
            "tile_overlap": (0, 65536),
        }
        all_in_range("rounds", self, bounds)
        if self.fusion not in FUSIONS:
            raise ConfigError(f"rounds.fusion = {self.fusion!r}: choose {' or '.join(FUSIONS)}")
        if self.profiles and len(self.profiles) != len(self.annotators):
            raise ConfigError(
                f"rounds.profiles has {len(self.profiles)} entries for "
                f"{len(self.annotators)} annotators: give one per annotator, or none"
            )
        if self.tile:
            try:
                self.tiling()
            except ConfigError as exc:
                raise ConfigError(f"[rounds] tile settings: {exc}") from None


@dataclass(frozen=True)
class StudyConfig:
    """Everything in ``loop.toml``."""

    task: str = "segmentation"
    groups: tuple[str, ...] = ()
    """Metadata columns that ``loop status`` and the reports break figures down by."""
    split: SplitConfig = field(default_factory=SplitConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    unet: UNetConfig = field(default_factory=UNetConfig)
    detection: DetectionConfig = field(default_factory=DetectionConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    score: ScoreConfig = field(default_factory=ScoreConfig)
    rounds: RoundsConfig = field(default_factory=RoundsConfig)
    labels: LabelsConfig = field(default_factory=LabelsConfig)
    display: DisplayConfig = field(default_factory=DisplayConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    regions: RegionsConfig = field(default_factory=RegionsConfig)
    effort: EffortWeights = field(default_factory=EffortWeights)
    noise: dict[str, NoiseProfile] = field(default_factory=dict)
    """The study's own noise profiles of simulated annotators (``[noise.NAME]`` tables), beside
    (or instead of) the built-in perfect, careful, average and sloppy."""

    def __post_init__(self):
        if self.task not in TASKS:
            raise ConfigError(f"task = {self.task!r}: choose one of {', '.join(TASKS)}")
        task_of(self.task).check(self)
        known = {*PROFILES, *self.noise}
        for name in self.rounds.profiles:
            if name not in known:
                raise ConfigError(
                    f"rounds.profiles: unknown noise profile {name!r}; choose one of "
                    f"{', '.join(sorted(known))}, or define it as [noise.{name}]"
                )

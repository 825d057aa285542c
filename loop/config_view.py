"""What annotators see: the ``[labels]`` and ``[display]`` sections of ``loop.toml``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from loop.config_checks import in_range
from loop.core.display import DISPLAY_COLOURS
from loop.errors import ConfigError

COLOUR = re.compile(r"^#[0-9A-Fa-f]{6}$")


def _check_colours(where: str, colours) -> None:
    for colour in colours:
        if not COLOUR.match(colour):
            raise ConfigError(f"{where}: {colour!r}: write a colour as #rrggbb")


@dataclass(frozen=True)
class LabelsConfig:
    """What annotators see in Label Studio (segmentation): what the objects are called, their
    colour, and the objects the model is unsure of, pre-drawn as ``<object>?`` in another
    colour so that experts check those first."""

    object: str = "nucleus"
    """The objects' name in the labeling view (``cell``, ``nucleus``, ...)."""
    colour: str = "#00c8ff"
    """Cyan: it stands out on dark fluorescence and on purple-pink stains alike."""
    unsure_colour: str = "#ffb000"
    unsure_flow_error: float = 0.2
    """Pre-drawn objects whose own flow error (Cellpose's check, which drops objects above
    ``model.flow_threshold``) exceeds this are shown as ``<object>?``; 0 = none."""

    others: tuple[str, ...] = ()
    """More kinds of object annotators can mark (e.g. ``["mitotic figure"]``). The model
    pre-draws every object as ``object``; annotators relabel the others. Pull keeps each
    object's class, agreement is also given per class, and the consensus takes each object's
    class by majority."""
    other_colours: tuple[str, ...] = ()
    """One ``#rrggbb`` per entry of ``others``; empty: magenta, green, orange, violet, ..."""

    classes: tuple[str, ...] = ()
    """Semantic segmentation: the pixel classes, the background first (class 0, left out of
    the means over foreground classes), e.g. ``["membrane", "interior"]``. A ground-truth
    label image holds one value per class (0, 1, ...; a binary 0/255 image for two)."""
    class_colours: tuple[str, ...] = ()
    """One ``#rrggbb`` per class; empty: grey for the background, then the colours of
    ``others``."""
    class_values: tuple[int, ...] = ()
    """The value of each class in ground-truth label images, a class table (e.g. ``[0, 128,
    255]``); empty: class ``k`` is value ``k`` (or 0/255 for two classes)."""
    ignore: int = -1
    """Semantic segmentation: the value of unlabeled pixels in ground-truth label images
    (they neither train nor count); -1 = none."""
    unsure_probability: float = 0.0
    """Semantic segmentation: pre-painted pixels whose class probability is below this are
    shown as ``<class>?`` in the unsure colour, for experts to check first (0 = none).
    Detection: the same for pre-drawn boxes whose score is below this."""
    masks: str = "classes"
    """How ``loop ingest --masks`` reads a semantic study's label images: ``classes`` (class
    indices) or ``instances`` (instance labels: 2 classes give background and object, 3 add
    the objects' boundary)."""

    def __post_init__(self):
        self._check_classes()
        names = [self.object, *self.others]
        if len(set(names)) < len(names) or any(
            not n.strip() or n.endswith("?") for n in self.others
        ):
            raise ConfigError(
                f"labels.others = {list(self.others)}: give names that differ from each other "
                f"and from labels.object ({self.object!r}), not empty, not ending in '?'"
            )
        if self.other_colours and len(self.other_colours) != len(self.others):
            raise ConfigError(
                f"labels.other_colours has {len(self.other_colours)} colour(s) for "
                f"{len(self.others)} name(s) in labels.others: give one each, or none"
            )
        _check_colours("labels.other_colours", self.other_colours)
        if not self.object.strip() or self.object.endswith("?"):
            raise ConfigError(
                f"labels.object = {self.object!r}: give a name such as nucleus or cell "
                "(not empty, not ending in '?', which marks the model's doubtful objects)"
            )
        for name in ("colour", "unsure_colour"):
            if not COLOUR.match(getattr(self, name)):
                raise ConfigError(
                    f"labels.{name} = {getattr(self, name)!r}: write a colour as #rrggbb"
                )
        in_range("labels.unsure_flow_error", self.unsure_flow_error, 0.0, 100.0)

    def _check_classes(self) -> None:
        names = self.classes
        if len(names) == 1 or len(names) > 64 or len(set(names)) < len(names):
            raise ConfigError(
                f"labels.classes = {list(names)[:8]}: give 2 to 64 distinct class names, "
                "the background first"
            )
        if any(not n.strip() or n.endswith("?") for n in names):
            raise ConfigError(
                f"labels.classes = {list(names)}: class names must not be empty or end in '?'"
            )
        if self.class_colours and len(self.class_colours) != len(names):
            raise ConfigError(
                f"labels.class_colours has {len(self.class_colours)} colour(s) for "
                f"{len(names)} class(es): give one each, or none"
            )
        _check_colours("labels.class_colours", self.class_colours)
        in_range("labels.ignore", self.ignore, -1, 2**31 - 1)
        if self.class_values and (
            len(self.class_values) != len(names)
            or len(set(self.class_values)) < len(names)
            or self.ignore in self.class_values
        ):
            raise ConfigError(
                f"labels.class_values = {list(self.class_values)[:8]}: give one distinct value "
                f"per class ({len(names)}), none of them labels.ignore"
            )
        if 0 <= self.ignore < len(names):
            raise ConfigError(
                f"labels.ignore = {self.ignore} is a class index: give a value above "
                f"{len(names) - 1} (e.g. 255), or -1 for none"
            )
        in_range("labels.unsure_probability", self.unsure_probability, 0.0, 1.0)
        if self.masks not in ("classes", "instances"):
            raise ConfigError(f"labels.masks = {self.masks!r}: choose classes or instances")


OTHER_COLOURS = ("#ff4fd8", "#7cff4f", "#ff8c1a", "#9b6bff", "#ffe14f", "#ff4f4f")
MAX_SHOWN = 6
BACKGROUND_COLOUR = "#808080"


def class_labels(labels: LabelsConfig) -> tuple[tuple[str, str], ...]:
    """(name, colour) of each pixel class of ``labels``, the background first.

    >>> class_labels(LabelsConfig(classes=("membrane", "interior")))
    (('membrane', '#808080'), ('interior', '#00c8ff'))
    """
    colours = labels.class_colours or (
        BACKGROUND_COLOUR,
        labels.colour,
        *(OTHER_COLOURS[i % len(OTHER_COLOURS)] for i in range(len(labels.classes))),
    )
    return tuple(zip(labels.classes, colours[: len(labels.classes)], strict=True))


def other_labels(labels: LabelsConfig) -> tuple[tuple[str, str], ...]:
    """(name, colour) of each extra object class of ``labels``."""
    colours = labels.other_colours or tuple(
        OTHER_COLOURS[i % len(OTHER_COLOURS)] for i in range(len(labels.others))
    )
    return tuple(zip(labels.others, colours, strict=True))


@dataclass(frozen=True)
class DisplayConfig:
    """How an image is turned into the picture annotators see (a PNG served to Label
    Studio). Every channel is stretched from its ``lower`` to its ``upper`` percentile (16-bit
    and float images included); several channels are added up in their colours, as a
    composite in Fiji."""

    channels: tuple[int, ...] = ()
    """Channels to show, 0 first. Empty: a one-channel image in grey, an 8-bit RGB image as
    it is (stains keep their colours), other images their first three channels."""
    colours: tuple[str, ...] = ()
    """One ``#rrggbb`` per shown channel. Empty: grey for one channel; green and magenta for
    two; red, green and blue for three."""
    lower: float = 1.0
    upper: float = 99.8

    def __post_init__(self):
        if any(not 0 <= c < 4096 for c in self.channels) or len(set(self.channels)) < len(
            self.channels
        ):
            raise ConfigError(
                f"display.channels = {list(self.channels)}: give distinct channel numbers, "
                "0 for the first"
            )
        if len(self.channels) > MAX_SHOWN:
            raise ConfigError(f"display.channels: show at most {MAX_SHOWN} channels at once")
        if len(self.channels) > len(DISPLAY_COLOURS) and not self.colours:
            raise ConfigError(
                f"display.channels shows {len(self.channels)} channels: give display.colours, "
                "one #rrggbb per channel"
            )
        _check_colours("display.colours", self.colours)
        if self.colours and len(self.colours) != len(self.channels):
            raise ConfigError(
                f"display.colours has {len(self.colours)} colour(s) for {len(self.channels)} "
                "channel(s) in display.channels: give one per channel shown, or none"
            )
        if not 0 <= self.lower < self.upper <= 100:
            raise ConfigError(
                f"display.lower = {self.lower}, display.upper = {self.upper}: give percentiles "
                "with 0 <= lower < upper <= 100"
            )

"""Named errors. Each message says what went wrong and how to fix it.

The CLI turns any :class:`LoopError` into a one-line message and a non-zero exit code;
anything else is a bug and keeps its traceback (with locals hidden).
"""

from __future__ import annotations


class LoopError(Exception):
    """Base class of every error the loop raises on purpose."""


class ConfigError(LoopError):
    """A config file is malformed, has an unknown key or a value out of range."""


class StudyNotFound(LoopError):
    """The study folder or its database does not exist."""


class StudyUnwritable(LoopError):
    """The study's database cannot be written: a read-only folder or file system, a full disk."""


class StudyExists(LoopError):
    """`loop init` was asked to create a study that already exists."""


class StudyBusy(LoopError):
    """Another process is writing to the study (push, pull, train or a round)."""


class SchemaTooNew(LoopError):
    """The study database was written by a newer version of loop."""


class ImageError(LoopError):
    """Base class of the per-file problems found while reading images and masks.

    Ingest records these as skipped files and goes on with the next file.
    """

    reason = "unreadable"

    def __init__(self, path, message: str):
        self.path = str(path)
        super().__init__(f"{self.path}: {message}")


class EmptyFile(ImageError):
    """A zero-byte file."""

    reason = "empty"


class UnreadableImage(ImageError):
    """A file that is not an image, or a truncated/corrupt one."""

    reason = "unreadable"


class UnsupportedImage(ImageError):
    """An image whose layout (e.g. a 3-D stack) the loop does not handle yet."""

    reason = "unsupported"


class ImageTooLarge(ImageError):
    """An image whose header declares more pixels than the loop reads whole."""

    reason = "too-large"


class BadMask(ImageError):
    """A mask that is not an integer label image, or whose shape differs from its image."""

    reason = "bad-mask"


class DuplicateImage(ImageError):
    """A file with the same content (sha256) as an image already in the study."""

    reason = "duplicate"


class OutsideRoot(ImageError):
    """A path that resolves outside the data root being ingested."""

    reason = "outside-root"


class MissingClass(ImageError):
    """Classification from folders: an image that is not inside a class folder."""

    reason = "no-class"


class BadSidecar(ImageError):
    """An image whose metadata sidecar cannot be read."""

    reason = "bad-metadata"


class MetadataError(LoopError):
    """A metadata or labels table (CSV/JSON) that cannot be read or has no usable key column."""


class NothingIngested(LoopError):
    """An ingest found no valid image at all."""


class SplitError(LoopError):
    """A split cannot be made as asked (too few images, unknown column, labels would be lost)."""


class DataRootNotFound(LoopError):
    """The folder given to ingest does not exist or is not a folder."""


class TaskMismatch(LoopError):
    """An option that does not fit the study's task (masks for classification, ...)."""


class AnnotationToolError(LoopError):
    """Base class of the errors of the annotation tool (Label Studio) and its server."""


class ToolUnreachable(AnnotationToolError):
    """The annotation server does not answer, or keeps answering 5xx, after retries."""


class ToolRejected(AnnotationToolError):
    """The annotation server refused a request (4xx): bad credentials, a missing project, ..."""


class ServerStartFailed(AnnotationToolError):
    """The embedded Label Studio could not be started (not installed, crashed, too slow)."""


class MalformedAnnotation(AnnotationToolError):
    """An annotation payload that cannot be converted to a mask or class."""


class CredentialsError(AnnotationToolError):
    """Missing, unreadable or too widely readable credentials."""


class PushRefused(LoopError):
    """Images that must not be annotated (the test split, excluded images) or unknown ids."""


class ModelError(LoopError):
    """A model that cannot be built, loaded or trained (missing weights, wrong widths, no
    labels)."""


class NoModel(LoopError):
    """A command that needs a trained model ran before ``loop train``."""


class ShiftError(LoopError):
    """``loop shift`` cannot compare groups (unknown key, a single group, too few images)."""


class EngineError(LoopError):
    """The Dask cluster of ``--workers`` / ``--scheduler`` cannot be started or reached."""


class MeasureError(LoopError):
    """``loop measure`` cannot measure a folder (no images, output inside it, no masks for
    an image, a classification study)."""


class UnknownStrategy(LoopError):
    """A strategy name that ``loop strategies`` does not list, or that does not fit the task."""


class AdjudicationError(LoopError):
    """``loop adjudicate`` asked for something it cannot do (no such reviewer, a bad threshold)."""


class NothingToExport(LoopError):
    """``loop export`` found no consensus or adjudicated labels."""


class RoundError(LoopError):
    """A round of the loop that cannot go on (nothing to train on, the pool used up, ...)."""


class DatasetError(LoopError):
    """A public data set that cannot be downloaded or is not laid out as expected."""

"""The commented ``loop.toml`` that ``loop init`` writes: every key with its default and what
it does (it parses back to the defaults of :mod:`loop.config`)."""

from __future__ import annotations

from loop.config import (
    AugmentConfig,
    ClassifierConfig,
    ClusterConfig,
    DisplayConfig,
    IngestConfig,
    LabelsConfig,
    ModelConfig,
    RegionsConfig,
    RoundsConfig,
    ScoreConfig,
    SplitConfig,
)
from loop.config_detection import DetectionConfig
from loop.config_unet import UNetConfig
from loop.core.effort import EffortWeights
from loop.tasks import described, task_of


def default_toml(task: str) -> str:
    """The commented ``loop.toml`` that ``loop init`` writes (it parses to the defaults)."""
    spec = task_of(task)
    split, ingest, model, unet = SplitConfig(), IngestConfig(), ModelConfig(), UNetConfig()
    classifier, augment, score = ClassifierConfig(), AugmentConfig(), ScoreConfig()
    rounds, labels, display = RoundsConfig(), LabelsConfig(), DisplayConfig()
    cluster, regions, effort = ClusterConfig(), RegionsConfig(), EffortWeights()
    detection = DetectionConfig()
    stratify_hint = ", ".join(spec.stratify) or "nothing"
    return f"""\
# loop study configuration. Every key is optional; the values shown are the defaults.
# Unknown keys are errors, so a typo cannot be silently ignored.

task = "{task}"          # {described()}
# Metadata columns that `loop status` and reports break figures down by (e.g. ["modality"]).
groups = []

[split]                  # defaults of `loop split`; its options override them
test = {split.test}              # held-out test set: a fraction (< 1) or a count; never annotated
initial = {split.initial}          # initial labeled set from what is left: a fraction or a count
seed = {split.seed}
stratify = []            # metadata columns to stratify by; empty = by {stratify_hint}

[ingest]
extensions = {_toml_list(ingest.extensions)}
# The mask of image a.png is <masks>/a<suffix>.tif (or .tiff, .png): first match wins.
mask_suffixes = {_toml_list(ingest.mask_suffixes)}

[model]                  # the Cellpose model (segmentation)
# "" = a small network from scratch; or cyto3 / nuclei (downloaded: needs the internet)
# or the path of a Cellpose 3 weights file to fine-tune
pretrained = ""
nbase = {list(model.nbase)}   # network widths; stock Cellpose is [2, 32, 64, 128, 256]
crop = {model.crop}
batch_size = {model.batch_size}
epochs = {model.epochs}             # passes over the labeled images, within min_steps..max_steps
min_steps = {model.min_steps}
max_steps = {model.max_steps}
warm_start = true        # continue from the last accepted model with warm_fraction of the steps
warm_fraction = {model.warm_fraction}
learning_rate = {model.learning_rate}
val_fraction = {model.val_fraction}       # labeled images kept out to validate (never test images)
keep_tolerance = {model.keep_tolerance}     # reject a model worse than the last beyond noise
retry_blind = true       # a model that finds nothing on its own training images: train again
invert = "{model.invert}"        # auto: bright-background images (stains) inverted; never; always
flow_threshold = {model.flow_threshold}
cellprob_threshold = {model.cellprob_threshold}
seed = {model.seed}
# predict/measure: an image with a side over predict_tile_above goes in tiles of at most
# predict_tile px sharing predict_tile_overlap px (more than an object), labels stitched
predict_tile = {model.predict_tile}
predict_tile_above = {model.predict_tile_above}
predict_tile_overlap = {model.predict_tile_overlap}
whole_up_to = {model.whole_up_to}        # a side (padded) up to this: one pass; else 224 px tiles
images_per_pass = {model.images_per_pass}      # images sharing a pass; 0: CPU 1, GPU up to 64
fill_gpu = true          # on CUDA, widths and batch left at these defaults become stock / 32

[classifier]             # the image classifier (classification)
estimator = "{classifier.estimator}"  # logistic or random-forest
committee = {classifier.committee}            # bootstrap committee for the committee strategy
augment_copies = {classifier.augment_copies}
seed = {classifier.seed}

[unet]                   # the U-Net (semantic segmentation; MONAI's BasicUNet)
features = {list(unet.features)}  # channels of its 5 encoder levels and last decoder level
channels = {unet.channels}             # input: 1 (colour turned grey) or 3
dropout = {unet.dropout}
crop = {unet.crop}               # training crops (a multiple of 16)
batch_size = {unet.batch_size}
epochs = {unet.epochs}              # passes over the labeled images, within min_steps..max_steps
min_steps = {unet.min_steps}
max_steps = {unet.max_steps}
warm_start = true
warm_fraction = {unet.warm_fraction}
learning_rate = {unet.learning_rate}
val_fraction = {unet.val_fraction}
keep_tolerance = {unet.keep_tolerance}
tile = {unet.tile}               # sliding windows that predict an image (a multiple of 16)
overlap = {unet.overlap}
seed = {unet.seed}

[detection]              # the detector (detection; a centre heatmap on MONAI's BasicUNet)
shape = "{detection.shape}"            # what annotators draw: box, or point (the centre)
point_radius = {detection.point_radius}       # points: matched within this many pixels
scale = {detection.scale}              # images are resized by this before the network
features = {list(detection.features)}
channels = {detection.channels}             # input: 3 (colour) or 1 (grey)
dropout = {detection.dropout}
crop = {detection.crop}               # training crops at the working scale (a multiple of 16)
batch_size = {detection.batch_size}
epochs = {detection.epochs}              # passes over the labeled images
min_steps = {detection.min_steps}
max_steps = {detection.max_steps}
warm_start = true
warm_fraction = {detection.warm_fraction}
learning_rate = {detection.learning_rate}
val_fraction = {detection.val_fraction}
keep_tolerance = {detection.keep_tolerance}
threshold = {detection.threshold}          # a detection scores this or more (unless chosen below)
choose_threshold = true  # each model chooses its threshold on its validation images
min_score = {detection.min_score}         # lower-scored peaks are kept for AP only
nms_iou = {detection.nms_iou}            # of two boxes overlapping more, the lower-scored goes
tile = {detection.tile}               # sliding windows (a multiple of 16)
overlap = {detection.overlap}
seed = {detection.seed}

[augment]                # training-time augmentation, seeded
flips = true
intensity = true         # brightness, contrast, gamma
noise = true             # Poisson + Gaussian
blur = true
elastic = false
probability = {augment.probability}

[score]                  # defaults of `loop score`
strategy = ""            # see `loop strategies`; "" = the task's default
k = {score.k}
shortlist = {score.shortlist}            # diversity and expensive scores see the top shortlist * k
chunk = {score.chunk}
pool_sample = {score.pool_sample}          # measure a seeded random subset of the pool (0 = all)
coverage_until = {score.coverage_until}      # auto: typical images until this many are labeled

[rounds]                 # `loop round` and `loop run`
overlap = {rounds.overlap}              # distinct annotators per task
min_agreement = {rounds.min_agreement}      # below: adjudication instead of a consensus label
min_annotations = {rounds.min_annotations}      # valid annotations a consensus needs (<= overlap)
fusion = "{rounds.fusion}"       # consensus of instance masks: majority or staple
annotators = {_toml_list(rounds.annotators)}   # simulated annotators
profiles = []            # noise: perfect/careful/average/sloppy; [] = careful, average, sloppy
poll_seconds = {rounds.poll_seconds}      # how often `loop run` checks for human annotations
full_pull_minutes = {rounds.full_pull_minutes}  # pulls read updated tasks; all after this long
final_train = true       # after the last round, train and evaluate on every label once more
tile = {rounds.tile}                 # > 0: images larger than tile_above are annotated as tiles
tile_above = {rounds.tile_above}         #   of at most tile x tile pixels, stitched back on pull
tile_overlap = {rounds.tile_overlap}        #   neighbouring tiles share this many pixels

[labels]                 # what annotators see in Label Studio (segmentation)
object = "{labels.object}"       # the objects' name (nucleus, cell, ...)
colour = "{labels.colour}"      # their colour (#rrggbb)
unsure_colour = "{labels.unsure_colour}"  # the model's doubtful objects, as "{labels.object}?"
unsure_flow_error = {labels.unsure_flow_error}  # doubtful: own flow error above this (0 = none)
others = []              # more kinds of object annotators mark, e.g. ["mitotic figure"]; the
                         # model draws every object as "{labels.object}", annotators relabel
other_colours = []       # one "#rrggbb" per name in others; [] = magenta, green, orange, ...
classes = {_toml_list(spec.classes)}   # semantic: the pixel classes, the background first
class_colours = []       # one "#rrggbb" per class; [] = grey background, then the colours above
class_values = []         # semantic: each class's value in label images, e.g. [0, 128, 255]
ignore = {labels.ignore}              # semantic: value of unlabeled pixels (-1: none)
unsure_probability = {labels.unsure_probability}  # semantic: below it, shown as "<class>?"
masks = "{labels.masks}"        # semantic: label images hold classes, or instances (2/3 classes)

[cluster]                # where score (rounds too), predict and measure run by default
workers = {cluster.workers}              # local Dask worker processes; 1 = in the process itself
scheduler = ""           # or a running Dask scheduler, e.g. "tcp://head-node:8786"

[regions]                # the unit of the @region strategies (segmentation; `loop strategies`)
size = {regions.size}               # side of the square regions an image is cut into, in pixels
per_image = {regions.per_image}            # the most regions of one image in a batch
context = {regions.context}             # pixels shown around a region in its task

[effort]                 # the cost of each edit of a pre-annotation (loop.core.effort):
accepted = {effort.accepted}           # a pre-drawn object looked at and kept
corrected = {effort.corrected}          # part of an outline redrawn
deleted = {effort.deleted}            # a false object deleted (AOGM-D: false positive 1)
drawn = {effort.drawn}             # a missed object drawn (AOGM-D: false negative 10)
split = {effort.split}              # one object split in two (AOGM-D 5)
merged = {effort.merged}             # two objects merged into one (AOGM-D 5)

[display]                # the picture annotators see of each image
channels = []            # channels to show, 0 first; [] = grey as grey, 8-bit RGB as it is,
                         # other images their first three channels. E.g. [2] or [0, 1]
colours = []             # one "#rrggbb" per channel shown, added up as a composite;
                         # [] = grey for one, green + magenta for two, red/green/blue for three
lower = {display.lower}              # percentiles stretched to black and to full brightness,
upper = {display.upper}             # per channel (16-bit and float images too)

# Noise profiles of your own for simulated annotators (`rounds.profiles`, `loop simulate
# --profile NAME=PROFILE`), one table each; a key left out is exact (0). A table named after a
# built-in profile replaces it. Probabilities per object (flip: per image).
# [noise.resident]
# jitter = [1, 3]          # erode or dilate each object by 1..3 px
# miss_small = 0.2         # objects smaller than half the median
# miss = 0.03              # any other object
# false_positive = 0.03    # false objects per true object
# merge = 0.05             # touching objects drawn as one
# split = 0.02             # large objects drawn as two
# flip = 0.15              # classification: another class
# seconds_per_object = 2.5
# seconds_per_image = 6.0
"""


def _toml_list(items) -> str:
    return "[" + ", ".join(f'"{item}"' for item in items) + "]"

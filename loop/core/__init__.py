"""Pure functions on arrays: query strategies, agreement, metrics, images, tiles,
augmentation and per-object measurements. Nothing here reads the study or the network."""

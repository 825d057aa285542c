"""Annotation: push images to the tool, pull annotations back (with tile stitching), fuse them
into a consensus and adjudicate disagreements."""

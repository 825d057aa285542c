"""Data in: ingest a folder of images with metadata, split it, public data sets, demo and
synthetic data."""

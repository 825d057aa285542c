"""Active-learning annotation loop for scientific images."""

__version__ = "0.1.0"

"""Model families: Cellpose instance segmentation and a whole-image classifier.

Each module imports its heavy dependencies (torch, cellpose) at import time, so import them
only where a model is needed; the CLI starts without them.
"""

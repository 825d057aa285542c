"""Matplotlib for PNG files: the non-interactive Agg backend, imported only when a figure is
drawn, and figures written atomically (a killed run never leaves half a PNG)."""

from __future__ import annotations

from pathlib import Path

from loop.core.files import atomic_path


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path) -> Path:
    """Write ``fig`` to ``path`` atomically and close it; returns ``path``."""
    plt = pyplot()
    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp)
    finally:
        plt.close(fig)
    return path

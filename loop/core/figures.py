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


def loss_curve(
    losses, path: str | Path, *, title: str, ylabel: str = "loss", xlabel: str = "epoch"
) -> Path:
    """Plot a training loss curve (one value per epoch or chunk of steps) into ``path``
    (PNG)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=100)
    ax.plot(range(1, len(losses) + 1), losses, color="#1f77b4")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    return save_figure(fig, Path(path))

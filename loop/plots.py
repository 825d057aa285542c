"""PNG plots for people (loss curves now; learning curves and galleries in reports).

Matplotlib with the non-interactive Agg backend, imported only when a plot is drawn.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def loss_curve(losses: Sequence[float], path: str | Path, *, title: str) -> Path:
    """Plot training loss per epoch (pass over the training images) into ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=100)
    ax.plot(range(1, len(losses) + 1), losses, color="#1f77b4")
    ax.set_xlabel("epoch (one crop per training image)")
    ax.set_ylabel("loss (flows MSE/2 + cell-probability BCE)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
    return path

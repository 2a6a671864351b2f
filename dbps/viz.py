"""Pictures: an image with its per-patch attention as a heatmap, salient and context patches outlined."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dbps.files import atomic_write


def save_heatmap(
    image: np.ndarray,
    scores: np.ndarray,
    coords: np.ndarray,
    patch_size: tuple[int, int],
    salient: np.ndarray,
    context: np.ndarray,
    title: str,
    path: Path,
) -> None:
    """Write a two-panel PNG: the image with salient (red) and context (yellow) patches, and the attention map.

    Args:
        image: C×H×W (C = 1 or 3) in [0, 1].
        scores: per-patch attention (N,), NaN where a patch has none.
        coords: top-left (y, x) of each patch (N, 2).
        patch_size: (height, width) of a patch.
        salient: indices of the salient patches.
        context: indices of the context (sub-salient) patches.
        title: figure title.
        path: PNG path.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    picture = image[0] if image.shape[0] == 1 else np.moveaxis(image, 0, -1)
    heat = np.zeros(picture.shape[:2], dtype=np.float32)
    valid = np.where(np.isnan(scores), 0.0, scores)
    ph, pw = patch_size
    for (y, x), value in zip(coords, valid, strict=True):
        np.maximum(heat[y : y + ph, x : x + pw], value, out=heat[y : y + ph, x : x + pw])
    fig, axes = plt.subplots(1, 2, figsize=(11, 5.5))
    for ax in axes:
        ax.imshow(picture, cmap="gray" if picture.ndim == 2 else None, vmin=0, vmax=1)
        ax.set_axis_off()
    for indices, colour in ((context, "gold"), (salient, "red")):
        for y, x in coords[indices]:
            axes[0].add_patch(Rectangle((x, y), pw, ph, fill=False, edgecolor=colour, linewidth=1.2))
    overlay = axes[1].imshow(heat, cmap="inferno", alpha=0.6)
    fig.colorbar(overlay, ax=axes[1], fraction=0.046, label="attention")
    axes[0].set_title("salient (red) and context (yellow) patches")
    axes[1].set_title("attention over all patches")
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100))
    plt.close(fig)


def save_learning_curve(rows: list[dict[str, str]], metrics: list[str], path: Path) -> None:
    """Write a two-panel PNG of a run's metrics.csv rows: losses, and each task's metric, per epoch.

    Args:
        rows: metrics.csv rows (`epoch`, `train_loss`, `val_loss`, `val_<task>_<metric>`, and `test_…` when the
            test split was evaluated every epoch).
        metrics: the `<task>_<metric>` columns to draw on the right (each task's own metric), as fractions:
            validation solid, test dashed, whichever the rows hold.
        path: PNG path.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def column(name: str) -> list[float]:
        return [float(row.get(name) or "nan") for row in rows]

    present = set(rows[0]) if rows else set()
    epochs = [int(row["epoch"]) for row in rows]
    fig, (losses, scores) = plt.subplots(1, 2, figsize=(11, 4.5))
    for name, label in (("train_loss", "training"), ("val_loss", "validation"), ("test_loss", "test")):
        if name in present:
            losses.plot(epochs, column(name), marker="o", label=label)
    for split, style in (("val", "-"), ("test", "--")):
        for name in metrics:
            if f"{split}_{name}" in present:
                scores.plot(epochs, [100 * v for v in column(f"{split}_{name}")], style, marker="o",
                            label=f"{name} ({'validation' if split == 'val' else 'test'})")
    losses.set(xlabel="epoch", ylabel="loss", title="loss")
    scores.set(xlabel="epoch", ylabel="%", title="metrics")
    for ax in (losses, scores):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100))
    plt.close(fig)

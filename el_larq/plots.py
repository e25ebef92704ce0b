"""Pictures: the gamma plot (the paper's Fig. 4), training curves, feature maps (its Fig. 1).

matplotlib is the optional extra `plot` (`pip install 'el-larq[plot]'`); without it the
functions raise an ImportError that says so. They draw on their own
`matplotlib.figure.Figure` with the Agg canvas and never touch pyplot or the global
backend, so they are safe inside notebooks and GUI programs. Files are written
atomically.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from el_larq.io import atomic_path

__all__ = [
    "MATPLOTLIB_MISSING",
    "curves_figure",
    "feature_maps_figure",
    "gamma_figure",
    "plot_gamma_report",
    "plot_training_curves",
    "save_png",
]

# Plotting is the optional extra `plot`; what to do when it is missing, in one line.
MATPLOTLIB_MISSING = (
    "{what} needs matplotlib, which is not installed: pip install 'el-larq[plot]' "
    "(or pip install matplotlib)"
)


def _figure(what: str, size: tuple[float, float]) -> Any:
    """A pyplot-free figure on an Agg canvas."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(MATPLOTLIB_MISSING.format(what=what)) from None
    figure = Figure(figsize=size)
    FigureCanvasAgg(figure)
    return figure


def save_png(figure: Any, path: str) -> str:
    """Write a figure to a PNG at `path` atomically; returns `path`."""
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=120, format="png")
    return path


def gamma_figure(report: Sequence[dict[str, Any]], title: str = "") -> Any:
    """Bar plot of each gamma's change from its initial value, like the paper's Fig. 4.

    A gamma starts at `g` (eq. 5) and moves by a small fraction of it, so bars of the
    values themselves all look like their initial values; the bars here are `value -
    initial`, red where gamma rose and green where it fell, and each tick names the
    block, the link kind and `g`. The legend sits above the axes, over no bar.

    # Arguments
        report: The output of `el_larq.summary.gamma_report`.
        title: Plot title (default: what the plot shows).

    # Returns
        A `matplotlib.figure.Figure` (in a notebook, display it; `plot_gamma_report`
        writes it to a PNG).

    # Raises
        ImportError: matplotlib is not installed (the `plot` extra).

    # Example
        ```python
        figure = gamma_figure(gamma_report(model))
        ```
    """
    figure = _figure("plot_gamma_report", (max(6.0, 0.45 * len(report) + 2), 4.5))
    from matplotlib.patches import Patch  # after _figure: it reports a missing matplotlib

    ax = figure.add_subplot()
    changes = [row["value"] - row["initial"] for row in report]
    colors = ["tab:red" if change > 0 else "tab:green" for change in changes]
    ax.bar(range(len(report)), changes, color=colors)
    ax.axhline(0.0, color="k", linewidth=0.8)
    labels = [f"{row['block']}\n{row['kind'][:3]} g={row['initial']:g}" for row in report]
    ax.set_xticks(range(len(report)), labels, rotation=90, fontsize=7)
    ax.set_ylabel("gamma - initial value g")
    ax.set_title(title or "Elastic-Link gamma: change from its initial value", pad=28)
    handles = [Patch(color="tab:red", label="rose"), Patch(color="tab:green", label="fell")]
    ax.legend(
        handles=handles,
        loc="lower left",
        bbox_to_anchor=(0.0, 1.0),
        ncol=2,
        fontsize=8,
        frameon=False,
        borderaxespad=0.2,
    )
    figure.tight_layout()
    return figure


def plot_gamma_report(report: Sequence[dict[str, Any]], path: str, title: str = "") -> str:
    """Write `gamma_figure(report, title)` to a PNG at `path` (atomically); returns `path`.

    # Raises
        ImportError: matplotlib is not installed (the `plot` extra).

    # Example
        ```python
        plot_gamma_report(gamma_report(model), "gamma_report.png")
        ```
    """
    return save_png(gamma_figure(report, title), path)


# (metric key, its label) per panel of `plot_training_curves`.
_CURVES = (
    ("loss", "loss", (("loss", "train"), ("val_loss", "validation"))),
    ("top-1", "top-1 accuracy", (("top1", "train"), ("val_top1", "validation"))),
    ("learning rate", "learning rate", (("lr", "learning rate"),)),
)


def curves_figure(rows: Sequence[dict[str, Any]], title: str = "") -> Any:
    """Loss, top-1 and learning rate per epoch of a training run.

    Three panels side by side: training and validation loss, training and validation
    top-1, and the learning rate (log scale), from the rows of a run's `metrics.json`.
    A metric missing from the rows is left out.

    # Arguments
        rows: One dict per epoch with `epoch` and any of `loss`, `val_loss`, `top1`,
            `val_top1`, `lr` (what `el_larq.training.train` records).
        title: Title over the panels.

    # Returns
        A `matplotlib.figure.Figure`.

    # Raises
        ImportError: matplotlib is not installed (the `plot` extra).

    # Example
        ```python
        figure = curves_figure(json.load(open("runs/a/metrics.json")))
        ```
    """
    figure = _figure("plot_training_curves", (12.0, 3.6))
    axes = figure.subplots(1, len(_CURVES))
    rows = sorted(rows, key=lambda row: row["epoch"])
    for ax, (name, ylabel, series) in zip(axes, _CURVES, strict=True):
        for key, label in series:
            points = [(row["epoch"], row[key]) for row in rows if row.get(key) is not None]
            if points:
                epochs, values = zip(*points, strict=True)
                ax.plot(epochs, values, marker="o", markersize=3, label=label)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.xaxis.get_major_locator().set_params(integer=True)
        if name == "learning rate" and any(row.get("lr") for row in rows):
            ax.set_yscale("log")
        elif ax.lines:
            ax.legend(fontsize=8)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


def plot_training_curves(rows: Sequence[dict[str, Any]], path: str, title: str = "") -> str:
    """Write `curves_figure(rows, title)` to a PNG at `path` (atomically); returns `path`.

    Every training run writes one, `curves.png`, next to its `metrics.json`.

    # Raises
        ImportError: matplotlib is not installed (the `plot` extra).

    # Example
        ```python
        rows = json.load(open("runs/a/metrics.json"))
        plot_training_curves(rows, "runs/a/curves.png")
        ```
    """
    return save_png(curves_figure(rows, title), path)


def feature_maps_figure(
    images: Any, maps: dict[str, Any], channels: Sequence[int], title: str = ""
) -> Any:
    """A grid of feature maps: a row per image, the input then each model's channels.

    Each map is drawn with its own colour range (a binary net's maps and a float net's
    differ in scale; the figure compares patterns, as the paper's Fig. 1 does).

    # Arguments
        images: The input batch `(n, h, w, c)`; the first channel is drawn (grey).
        maps: `{label: array (n, h', w', len(channels))}`, in drawing order.
        channels: The channel indices the maps hold (for the column titles).
        title: Figure title.

    # Returns
        A `matplotlib.figure.Figure`.

    # Raises
        ImportError: matplotlib is not installed (the `plot` extra).

    # Example
        ```python
        figure = feature_maps_figure(x[:2], {"EL": maps}, [0, 1, 2, 3])
        ```
    """
    columns = 1 + len(maps) * len(channels)
    figure = _figure("plot_feature_maps", (1.3 * columns, 1.4 * len(images) + 0.6))
    axes = figure.subplots(len(images), columns, squeeze=False)
    for row, image in enumerate(images):
        panels = [("input", image[..., 0], "gray")]
        for label, values in maps.items():
            for index, channel in enumerate(channels):
                name = f"{label}\nch {channel}" if index == 0 else f"ch {channel}"
                panels.append((name, values[row, ..., index], "viridis"))
        for ax, (name, panel, cmap) in zip(axes[row], panels, strict=True):
            ax.imshow(panel, cmap=cmap)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(name, fontsize=7)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure

"""el_larq.plots: the gamma plot and the training curves, without pyplot."""

import os
import subprocess
import sys

import pytest

from el_larq.plots import curves_figure, gamma_figure, plot_gamma_report, plot_training_curves

PNG = b"\x89PNG\r\n\x1a\n"
REPORT = [  # gammas move by a small fraction of their initial value g
    dict(block=f"stage{i}_block1", kind=kind, initial=g, value=g + change)
    for i, (kind, g, change) in enumerate(
        [("squeeze", 4.0, 0.031), ("expand", 4.0, -0.012), ("squeeze", 2.0, 0.004)]
        + [("expand", 2.0, -0.027), ("squeeze", 4.0, 0.045), ("expand", 4.0, 0.018)]
    )
]
ROWS = [
    {"epoch": e, "loss": 2 / e, "val_loss": 2.2 / e, "top1": 0.5 + e / 20}
    | {"val_top1": 0.45 + e / 20, "lr": 1e-3 if e < 3 else 1e-4}
    for e in (1, 2, 3, 4)
]


def test_gamma_bars_are_changes_from_the_initial_value(tmp_path):
    figure = gamma_figure(REPORT)
    (ax,) = figure.axes
    heights = [bar.get_height() for bar in ax.patches]
    assert heights == pytest.approx([row["value"] - row["initial"] for row in REPORT])
    colors = [bar.get_facecolor()[:3] for bar in ax.patches]
    assert colors[0] != colors[1] and colors[0] == colors[2]  # rose / fell
    labels = [label.get_text() for label in ax.get_xticklabels()]
    assert labels[0] == "stage0_block1\nsqu g=4" and labels[3] == "stage3_block1\nexp g=2"
    path = plot_gamma_report(REPORT, str(tmp_path / "gamma.png"))
    assert open(path, "rb").read(8) == PNG


def test_gamma_legend_covers_no_bar():
    figure = gamma_figure(REPORT * 3)
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    (ax,) = figure.axes
    legend = ax.get_legend().get_window_extent(renderer)
    bars = [bar.get_window_extent(renderer) for bar in ax.patches]
    assert bars and not any(legend.overlaps(bar) for bar in bars)
    assert legend.y0 >= ax.get_window_extent(renderer).y1 - 1  # above the axes


def test_training_curves(tmp_path):
    figure = curves_figure(ROWS, title="run")
    loss, top1, lr = figure.axes
    assert [line.get_label() for line in loss.lines] == ["train", "validation"]
    assert list(top1.lines[1].get_ydata()) == [row["val_top1"] for row in ROWS]
    assert list(lr.lines[0].get_xdata()) == [1, 2, 3, 4] and lr.get_yscale() == "log"
    # a run without validation: its curve is left out
    (train_only,) = curves_figure([{"epoch": 1, "loss": 1.0}]).axes[0].lines
    assert train_only.get_label() == "train"
    path = plot_training_curves(ROWS, str(tmp_path / "curves.png"))
    assert open(path, "rb").read(8) == PNG


def test_plotting_never_switches_the_global_backend_or_imports_pyplot(tmp_path):
    code = (
        "import el_larq, matplotlib, sys\n"
        "matplotlib.use('pdf')\n"
        "from el_larq.plots import plot_gamma_report, plot_training_curves\n"
        f"plot_gamma_report({REPORT!r}, 'g.png')\n"
        f"plot_training_curves({ROWS!r}, 'c.png')\n"
        "print(matplotlib.get_backend(), 'matplotlib.pyplot' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["pdf", "False"]
    assert sorted(os.listdir(tmp_path)) == ["c.png", "g.png"]

"""Figures for evaluation and experiment reports (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from . import metrics


def _plt():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def roc_figure(labels: np.ndarray, probs: np.ndarray, classes: Sequence[str], path: Path,
               title: str = "ROC") -> None:
    """One-vs-rest ROC curve per class, with its AUC in the legend."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    for k, name in enumerate(classes):
        positive = np.asarray(labels) == k
        if positive.all() or not positive.any():
            continue
        fpr, tpr = metrics.roc_curve(positive, probs[:, k])
        ax.plot(fpr, tpr, label=f"{name} (AUC {metrics.auc(fpr, tpr):.3f})")
    _roc_axes(ax, title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def confusion_figure(cm: np.ndarray, classes: Sequence[str], path: Path,
                     title: str = "Confusion matrix") -> None:
    plt = _plt()
    cm = np.asarray(cm)
    fig, ax = plt.subplots(figsize=(1.2 * len(classes) + 2, 1.2 * len(classes) + 1.5), dpi=100)
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    top = cm.max() if cm.size else 0
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                    color="white" if cm[i, j] > top / 2 else "black")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def arms_roc_figure(curves: dict[str, list[tuple[np.ndarray, np.ndarray]]],
                    aucs: dict[str, list[float]], path: Path) -> None:
    """The finder-vs-full comparison: one panel per arm with each repeat's macro ROC curve (thin)
    and their mean (thick), mean AUC +- std in the title."""
    plt = _plt()
    arms = list(curves)
    fig, axes = plt.subplots(1, len(arms), figsize=(4.2 * len(arms), 4.4), dpi=100,
                             squeeze=False)
    for ax, arm in zip(axes[0], arms, strict=True):
        runs = curves[arm]
        for fpr, tpr in runs:
            ax.plot(fpr, tpr, color="tab:blue", alpha=0.35, linewidth=1)
        if runs:
            mean_tpr = np.mean([tpr for _, tpr in runs], axis=0)
            ax.plot(runs[0][0], mean_tpr, color="tab:blue", linewidth=2.5, label="mean")
        s = metrics.mean_std(aucs[arm])
        _roc_axes(ax, f"{arm}\nmacro AUC {s['mean']:.3f} ± {s['std']:.3f} (n={s['n']})")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _roc_axes(ax, title: str) -> None:  # type: ignore[no-untyped-def]
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title, fontsize=10)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right", fontsize=8)

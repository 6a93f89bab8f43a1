"""`edgecrystal experiment finder-vs-full`: the paper's comparison of classifier inputs.

Per repeat: one stratified 3:2 train/test split (optionally a stratified subsample of the
training side), a U-Net finder trained on the training side only (7:3 inside it), then the same
classifier recipe trained three times on the same images, fed

- `full`:   the whole image (preprocess.full_image),
- `manual`: the drop cut out with the ground-truth mask (preprocess.crop_drop),
- `finder`: the drop cut out with the finder's mask (preprocess.crop_drop),

and scored on the test side (one-vs-rest ROC AUC per class and macro). The last epoch's weights
are scored: the test side is never used to pick a model.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np

from .atomic import write_json, write_text
from .dataset import load_dataset
from .errors import DataError, UsageError
from .metrics import json_safe, macro_roc_curve, mean_std

if TYPE_CHECKING:
    from .dataset import Dataset
    from .train.profiles import ClassifierHP, FinderHP

log = logging.getLogger(__name__)

ARMS = {"full": "none", "manual": "manual", "finder": "finder"}


class ExperimentRun(TypedDict, total=False):
    """One repeat of report.json's "runs"."""

    repeat: int
    seed: int
    train: int
    test: int
    # arm -> the classifier's test figures (train.classifier.score) and seconds
    arms: dict[str, dict[str, Any]]
    finder: dict[str, float]  # test Dice and IoU (mean, std), seconds


def finder_vs_full(
    data_dir: str | Path,
    out: str | Path,
    *,
    train_size: int | None = None,
    repeats: int = 5,
    profile: str = "lite",
    classifier_overrides: dict[str, Any] | None = None,
    finder_overrides: dict[str, Any] | None = None,
    imagenet_weights: str | Path | None = None,
    keep_checkpoints: bool = False,
    verbose: int = 0,
) -> dict[str, Any]:
    from . import report_plots
    from .train import classifier as clf
    from .train import data, finder, profiles

    out = Path(out)
    if imagenet_weights is not None:
        # A missing file, or no network for "imagenet": one line now, before any data loads.
        from .models import resolve_imagenet_weights

        imagenet_weights = resolve_imagenet_weights(imagenet_weights)
    if out.exists() and not out.is_dir():
        raise UsageError(f"output {out} is a file, not a folder")
    if repeats < 1:
        raise UsageError("--repeats must be at least 1")
    classifier_hp = profiles.resolve("classifier", profile, classifier_overrides)
    finder_hp = profiles.resolve("finder", profile, finder_overrides)
    if classifier_hp.val_fraction <= 0:  # e.g. `finetune`: its split holds nothing out
        raise UsageError("the comparison scores a test side: the classifier's val_fraction "
                         f"must be above 0 (profile {profile} has {classifier_hp.val_fraction})")
    ds = load_dataset(data_dir)
    records = [r for r in ds.records if r.label and r.mask is not None]
    if len(records) < 10:
        raise DataError(f"{ds.root} has {len(records)} images with both a label and a mask; "
                        "the comparison needs at least 10")
    classes = data.resolve_classes(ds, None, None)
    out.mkdir(parents=True, exist_ok=True)
    samples = data.load_samples(records, masks=True)
    labels = data.label_indices(samples, classes)

    started = time.time()
    runs: list[ExperimentRun] = []
    curves: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {a: [] for a in ARMS}
    for r in range(repeats):
        seed = classifier_hp.seed + r
        tr, te = data.split_stratified(labels, classifier_hp.val_fraction, seed)
        if train_size:
            tr = data.subsample_stratified(tr, labels, train_size, seed)
        run: ExperimentRun = {"repeat": r, "seed": seed, "train": len(tr), "test": len(te),
                               "arms": {}}
        # The finder learns from the training side only (its own 7:3 split inside it).
        ftr, fva = data.split_random(len(tr), finder_hp.val_fraction, seed)
        run_finder_hp = profiles.apply_overrides(finder_hp, {"seed": seed})
        work = out / "runs" / f"repeat{r}"
        t0 = time.time()
        fres = finder.fit_finder([samples[tr[i]] for i in ftr], [samples[tr[i]] for i in fva],
                                 run_finder_hp, work / "finder", verbose=verbose)
        fscore = finder.mask_scores(fres.model, [samples[i] for i in te], run_finder_hp.input_size,
                                    run_finder_hp.threshold)
        run["finder"] = {k: fscore[k] for k in ("dice_mean", "dice_std", "iou_mean", "iou_std")}
        run["finder"]["seconds"] = round(time.time() - t0, 1)
        _say(verbose, f"repeat {r}: finder test Dice {fscore['dice_mean']:.3f} "
                      f"IoU {fscore['iou_mean']:.3f} ({run['finder']['seconds']} s)")
        idx = np.concatenate([tr, te])
        sub = [samples[i] for i in idx]
        masks = data.finder_probabilities(fres.model.predict_on_batch, sub,
                                          run_finder_hp.input_size)
        for arm, crop in ARMS.items():
            t0 = time.time()
            x = data.classifier_arrays(sub, crop, classifier_hp.input_size, masks,
                                       run_finder_hp.threshold,
                                       finder_size=run_finder_hp.input_size)
            x_tr, x_te = x[: len(tr)], x[len(tr):]
            res = clf.fit_classifier(x_tr, labels[tr], x_te, labels[te], len(classes),
                                     profiles.apply_overrides(classifier_hp, {"seed": seed}),
                                     work / arm, imagenet_weights=imagenet_weights,
                                     verbose=verbose, restore_best=False)
            score = clf.score(res.model, x_te, labels[te], classes, classifier_hp.batch_size)
            probs = score.pop("probs")
            curves[arm].append(macro_roc_curve(labels[te], probs))
            run["arms"][arm] = {**score, "seconds": round(time.time() - t0, 1)}
            _say(verbose, f"repeat {r}: {arm:6s} macro AUC {score['roc_auc']['macro']:.3f} "
                          f"accuracy {score['accuracy']:.3f} ({run['arms'][arm]['seconds']} s)")
            if not keep_checkpoints:
                shutil.rmtree(work / arm, ignore_errors=True)
        if not keep_checkpoints:
            shutil.rmtree(work, ignore_errors=True)
        runs.append(run)
        result = _summarise(runs, classes, classifier_hp, finder_hp, profile, train_size,
                            repeats, ds, time.time() - started)
        # Written after every repeat: a long run that is stopped still leaves its results.
        write_json(out / "report.json", json_safe(result))
        write_text(out / "report.md", render_markdown(result))
        aucs = {arm: [run["arms"][arm]["roc_auc"]["macro"] for run in runs] for arm in ARMS}
        report_plots.arms_roc_figure(curves, aucs, out / "roc_arms.png")
    if not keep_checkpoints:
        shutil.rmtree(out / "runs", ignore_errors=True)
    return result


def _summarise(runs: list[ExperimentRun], classes: list[str], classifier_hp: ClassifierHP,
               finder_hp: FinderHP, profile: str, train_size: int | None, repeats: int,
               ds: Dataset, seconds: float) -> dict[str, Any]:
    from .train.profiles import as_dict

    summary: dict[str, Any] = {}
    for arm in ARMS:
        macro = [run["arms"][arm]["roc_auc"]["macro"] for run in runs]
        summary[arm] = {"macro_auc": mean_std(macro),
                        "accuracy": mean_std([run["arms"][arm]["accuracy"] for run in runs]),
                        "per_class_auc": {c: mean_std([run["arms"][arm]["roc_auc"][c]
                                                       for run in runs]) for c in classes}}
    summary["finder_minus_full"] = mean_std(
        [run["arms"]["finder"]["roc_auc"]["macro"] - run["arms"]["full"]["roc_auc"]["macro"]
         for run in runs])
    summary["finder_segmentation"] = {
        "dice": mean_std([run["finder"]["dice_mean"] for run in runs]),
        "iou": mean_std([run["finder"]["iou_mean"] for run in runs])}
    return {"experiment": "finder-vs-full", "data": ds.summary(), "classes": classes,
            "profile": profile, "train_size": train_size, "repeats_planned": repeats,
            "repeats_done": len(runs), "classifier_hyperparameters": as_dict(classifier_hp),
            "finder_hyperparameters": as_dict(finder_hp), "seconds": round(seconds, 1),
            "summary": summary, "runs": runs, "figure": "roc_arms.png"}


def render_markdown(result: dict[str, Any]) -> str:
    s = result["summary"]
    ch, fh = result["classifier_hyperparameters"], result["finder_hyperparameters"]
    first = result["runs"][0]
    lines = [
        "# Finder vs full image (Miura et al.'s comparison)", "",
        f"Data `{result['data']['root']}` ({result['data']['images']} images); "
        f"{result['repeats_done']} of {result['repeats_planned']} repeats; "
        f"{first['train']} training / {first['test']} test images per repeat; "
        f"profile `{result['profile']}`; {result['seconds']:.0f} s in all.", "",
        f"Classifier: Inception-V3 {ch['input_size']} px, {ch['optimizer']} lr {ch['lr']}, "
        f"batch {ch['batch_size']}, {ch['epochs']} epochs, last epoch scored.  ",
        f"Finder: U-Net {fh['input_size']} px, base {fh['base_filters']}, {fh['optimizer']} "
        f"lr {fh['lr']}, {fh['epochs']} epochs; test Dice "
        f"{s['finder_segmentation']['dice']['mean']:.3f}, IoU "
        f"{s['finder_segmentation']['iou']['mean']:.3f}.", "",
        "| arm | classifier input | macro ROC AUC (mean ± std) | accuracy |", "|---|---|---|---|"]
    for arm, crop in ARMS.items():
        a = s[arm]
        lines.append(f"| {arm} | crop={crop} | {a['macro_auc']['mean']:.3f} ± "
                     f"{a['macro_auc']['std']:.3f} | {a['accuracy']['mean']:.3f} |")
    d = s["finder_minus_full"]
    lines += ["", f"finder − full (paired per repeat): {d['mean']:+.3f} ± {d['std']:.3f} "
              "(the paper reports about +0.05).", "", "![ROC per arm](roc_arms.png)", ""]
    return "\n".join(lines)


def _say(verbose: int, text: str) -> None:
    if verbose:
        log.info(text)

"""`edgecrystal train finder|classifier`, `edgecrystal evaluate`, `edgecrystal experiment`.

Only typer and the standard library at import time; TensorFlow loads inside the commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

PROFILE_HELP = ("Recipe: paper (as published), lite (edge devices, CPU minutes), edge (lite with a "
                "MobileNetV3-Small classifier), tiny (seconds); finder also sim2real (the "
                "shipped finder's: synthetic to real imagers).")

ProfileOpt = Annotated[str, typer.Option("--profile", help=PROFILE_HELP)]
BundleOpt = Annotated[Path, typer.Option("--bundle", "-b", help="Bundle folder to write into "
                                         "(created if new).")]
EpochsOpt = Annotated[int | None, typer.Option("--epochs", help="Epochs (overrides the profile).")]
BatchOpt = Annotated[int | None, typer.Option("--batch-size", help="Batch size.")]
LrOpt = Annotated[float | None, typer.Option("--lr", help="Learning rate.")]
SizeOpt = Annotated[int | None, typer.Option("--input-size", help="Network input size (px).")]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="Seed for splits, augmentation and "
                                             "initialisation.")]
SetOpt = Annotated[list[str] | None, typer.Option(
    "--set", help="Any other hyperparameter, key=value (repeatable), e.g. --set shift=0.05.")]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="Continue from the last per-epoch "
                                         "checkpoint in BUNDLE/checkpoints/<model>/.")]
VerboseOpt = Annotated[int, typer.Option("--verbose", "-v", count=True,
                                         help="Progress: -v one line per epoch, -vv progress bar.")]
ClassesOpt = Annotated[str | None, typer.Option(
    "--classes", help="Comma-separated class list (default: the bundle's, else the data's).")]
DataArg = Annotated[Path, typer.Argument(help="Data set folder (labels.csv or class folders).")]


def _overrides(epochs: int | None, batch_size: int | None, lr: float | None,
               input_size: int | None, seed: int | None, sets: list[str] | None,
               **extra: Any) -> dict[str, Any]:
    from ..train.profiles import parse_sets

    out: dict[str, Any] = parse_sets(sets)
    for key, value in {"epochs": epochs, "batch_size": batch_size, "lr": lr,
                       "input_size": input_size, "seed": seed, **extra}.items():
        if value is not None:
            out[key] = value
    return out


def _keras_verbosity(v: int) -> int:
    # Keras: 0 silent, 1 progress bar, 2 one line per epoch.
    return {0: 0, 1: 2}.get(v, 1)


def _classes(text: str | None) -> list[str] | None:
    return [c.strip() for c in text.split(",") if c.strip()] if text else None


def _show(result: dict[str, Any], verbose: int) -> None:
    """A few lines: where the model went and how it did; the whole record with -v."""
    if verbose:
        typer.echo(json.dumps({k: v for k, v in result.items()
                               if k not in ("hyperparameters", "held_out")},
                              indent=2, allow_nan=True))
        return
    training, found = result.get("training", {}), result.get("metrics", {})
    typer.echo(f"wrote {result['model']}")
    if result.get("classes"):
        typer.echo(f"classes: {', '.join(result['classes'])}")
    split = result.get("split", {})
    typer.echo(f"epochs: {training.get('epochs_completed')} (best {training.get('best_epoch')}); "
               f"images: {split.get('train')} train, {split.get('val')} validation")
    figures = []
    auc = (found.get("roc_auc") or {}).get("macro")
    # Without a validation split (the fine-tune profiles) the figures are on the training images.
    on = "training" if found.get("split") == "training" else "validation"
    for name, value in ((f"{on} AUC", auc), ("accuracy", found.get("accuracy")),
                        ("Dice", found.get("dice_mean")), ("IoU", found.get("iou_mean"))):
        if isinstance(value, (int, float)):
            figures.append(f"{name} {value:.3f}")
    if figures:
        typer.echo(", ".join(figures))
    typer.echo(f"next: edgecrystal build-engines {result['bundle']} (details: bundle.json, or -v)")


def train_finder_cmd(
    data: DataArg, bundle: BundleOpt,
    profile: Annotated[str | None, typer.Option(
        "--profile", help=PROFILE_HELP + " Default: lite; with --init, finetune (the shipped "
        "finder's augmentation, half of every batch synthetic wells, see docs/training.md).")
    ] = None,
    epochs: EpochsOpt = None,
    batch_size: BatchOpt = None, lr: LrOpt = None, input_size: SizeOpt = None,
    base_filters: Annotated[int | None, typer.Option(
        "--base-filters", help="U-Net filters at the top level.")] = None,
    seed: SeedOpt = None, sets: SetOpt = None, resume: ResumeOpt = False,
    classes: ClassesOpt = None,
    init: Annotated[str | None, typer.Option(
        "--init", help="Start from a trained finder: 'default' (the shipped one, see "
        "`edgecrystal models list`) or a bundle folder; fine-tunes it on DATA's masks "
        "(profile finetune unless --profile is given).")] = None,
    verbose: VerboseOpt = 0,
) -> None:
    """Train the U-Net drop finder on DATA's masked images (7:3 split) into BUNDLE/finder.keras."""
    from ..train import train_finder

    ov = _overrides(epochs, batch_size, lr, input_size, seed, sets, base_filters=base_filters)
    _show(train_finder(data, bundle, profile=profile, overrides=ov, resume=resume,
                       verbose=_keras_verbosity(verbose), classes=_classes(classes),
                       init=init), verbose)


def train_classifier_cmd(
    data: DataArg, bundle: BundleOpt,
    crop: Annotated[str, typer.Option("--crop", help="Classifier input: finder (the bundle's "
                                      "finder masks the drop), manual (ground-truth masks), none "
                                      "(whole image).")] = "finder",
    imagenet_weights: Annotated[Path | None, typer.Option(
        "--imagenet-weights", help="Start the backbone from ImageNet: a local Keras no-top "
        ".h5, or 'imagenet' for the file Keras downloads once and caches in "
        "~/.keras/models.")] = None,
    finder: Annotated[Path | None, typer.Option(
        "--finder", help="Another bundle whose finder this bundle uses (for data without "
        "drop masks).")] = None,
    profile: Annotated[str | None, typer.Option(
        "--profile", help=PROFILE_HELP + " Default: lite; with --init, finetune (every "
        "labelled image trains, seven eighths of every batch synthetic wells, see docs/"
        "training.md).")] = None,
    epochs: EpochsOpt = None, batch_size: BatchOpt = None,
    lr: LrOpt = None, input_size: SizeOpt = None, seed: SeedOpt = None, sets: SetOpt = None,
    resume: ResumeOpt = False, classes: ClassesOpt = None,
    init: Annotated[str | None, typer.Option(
        "--init", help="Start from a trained classifier: 'default' (the shipped one) or a "
        "bundle folder; fine-tunes it on DATA's labels (e.g. `index export-labels`), keeping "
        "its classes and architecture (profile finetune unless --profile is given).")] = None,
    fit_confidence: Annotated[bool, typer.Option(
        "--fit-confidence/--no-fit-confidence",
        help="Afterwards, export the FP32 ONNX and fit the calibration and crystals threshold "
        "on the validation split (`bundle fit-confidence` does it on other held-out "
        "wells). The finetune profile holds no image out: nothing is fitted then, and the "
        "bundle scores uncalibrated until `bundle fit-confidence`.")] = True,
    verbose: VerboseOpt = 0,
) -> None:
    """Train the classifier on DATA's labelled images (3:2 split, stratified; with --init,
    every image trains, synthetic wells mixed into every batch)."""
    from ..confidence_fit import train_and_fit
    from .bundle import describe_fit

    ov = _overrides(epochs, batch_size, lr, input_size, seed, sets)
    result = train_and_fit(data, bundle, fit=fit_confidence, crop=crop, profile=profile,
                           overrides=ov, imagenet_weights=imagenet_weights, resume=resume,
                           verbose=_keras_verbosity(verbose), classes=_classes(classes),
                           finder_from=finder, init=init)
    _show(result, verbose)
    if "confidence" in result:
        typer.echo(describe_fit(bundle, result["confidence"]))


def train_crystals_cmd(
    data: Annotated[Path, typer.Argument(help="Data set folder: labels.csv with a `crystals` "
                                         "column of crystal mask PNGs (as `edgecrystal synth` "
                                         "writes), or a crystals.csv of boxes.")],
    bundle: BundleOpt,
    profile: Annotated[str | None, typer.Option(
        "--profile", help="Recipe: sim2real (the shipped crystal model's), tiny (seconds), "
        "finetune (the default with --init).")] = None,
    epochs: EpochsOpt = None, batch_size: BatchOpt = None, lr: LrOpt = None,
    input_size: SizeOpt = None,
    base_filters: Annotated[int | None, typer.Option(
        "--base-filters", help="Filters of the first level.")] = None,
    seed: SeedOpt = None, sets: SetOpt = None, resume: ResumeOpt = False,
    init: Annotated[str | None, typer.Option(
        "--init", help="Start from a trained crystal model: 'default' (the shipped one) or a "
        "bundle folder; fine-tunes it (profile finetune unless --profile is given).")] = None,
    verbose: VerboseOpt = 0,
) -> None:
    """Train the crystal model (where the crystals are: a per-pixel crystal probability on the
    classifier's drop crop) into BUNDLE/crystals.keras and the bundle's `crystals` section."""
    from ..train.crystals import train_crystals

    ov = _overrides(epochs, batch_size, lr, input_size, seed, sets, base_filters=base_filters)
    result = train_crystals(data, bundle, profile=profile, overrides=ov, resume=resume,
                            verbose=_keras_verbosity(verbose), init=init)
    if verbose:
        _show(result, verbose)
        return
    found = result["metrics"]
    split = result["split"]
    typer.echo(f"wrote {result['model']}")
    typer.echo(f"epochs: {result['training'].get('epochs_completed')} (best "
               f"{result['training'].get('best_epoch')}); crops: {split['train']} train, "
               f"{split['val']} validation")
    for key in ("iou_0.5", "iou_0.3"):
        s = found[key]
        typer.echo(f"{found['split']} boxes at IoU {s['iou_threshold']}: recall "
                   f"{s['recall']:.3f}, precision {s['precision']:.3f} ({s['true_boxes']} "
                   f"crystals); crystal-free crops with a box: {s['crystal_free_with_a_box']}/"
                   f"{s['crystal_free_crops']}")
    typer.echo(f"next: edgecrystal build-engines {result['bundle']} (details: bundle.json, or -v)")


def evaluate_cmd(
    data: DataArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="Report folder (report.md, "
                                      "report.json, outlines.png, roc.png, confusion.png).")],
    bundle: Annotated[Path | None, typer.Option(
        "--bundle", "-b", help="Bundle to evaluate (default: the shipped default bundle, "
                               "edgecrystal models path bundle).")] = None,
    precision: Annotated[str, typer.Option(
        help="Which ONNX variant scores the classifier: fp32, fp16 or int8.")] = "fp32",
    crystals: Annotated[str | None, typer.Option(
        "--crystals", help="CSV of boxes drawn around the crystals (path,x0,y0,x1,y1,kind,"
        "certainty,note; kind none: an image checked to hold no crystal), or `masks` for "
        "DATA's crystal masks (labels.csv `crystals` column, as synth writes): also evaluate "
        "the bundle's crystal model (box precision/recall at IoU 0.3 and 0.5, count error, "
        "boxes on none images, crystals.png).")] = None,
    crystal_certainty: Annotated[str, typer.Option(
        "--crystal-certainty", help="Which drawn boxes count: sure (doubtful boxes are "
        "regions to ignore) or all.")] = "sure",
    verbose: VerboseOpt = 0,
) -> None:
    """The paper's Table 1 for BUNDLE on all of DATA (pass a held-out set): finder Dice/IoU per
    image with an outline contact sheet; classifier ROC AUC per class, macro and crystals vs
    rest, accuracy, crystal recall, confusion matrix and the worst-scored images per class,
    through ONNX Runtime and the runtime's own preprocessing (Keras only for a bundle without
    ONNX variants). DATA: labels.csv, class folders, or real photos with hand-drawn masks
    (masks/manifest.csv). --crystals CSV: the crystal model's boxes against drawn ones, through
    the same deployed path."""
    from ..evaluate import evaluate
    from ..interface import PRECISIONS

    if precision not in PRECISIONS:
        from ..errors import UsageError

        raise UsageError(f"--precision must be one of {', '.join(PRECISIONS)} (got {precision})")
    report = evaluate(data, bundle, out, verbose=verbose, precision=precision,
                      crystals=crystals, crystal_certainty=crystal_certainty)
    # The report without its figures' lines (they name PNG files in OUT).
    text = (Path(out) / "report.md").read_text(encoding="utf-8")
    typer.echo("\n".join(line for line in text.splitlines()
                         if not line.startswith("![")).rstrip())
    del report


def finder_vs_full_cmd(
    data: DataArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="Report folder.")],
    train_size: Annotated[int | None, typer.Option(
        "--train-size", help="Training images per repeat (stratified subsample of the 3/5 "
        "training split; default all).")] = None,
    repeats: Annotated[int, typer.Option("--repeats", help="Repeats (new split each).")] = 5,
    profile: ProfileOpt = "lite", epochs: EpochsOpt = None, batch_size: BatchOpt = None,
    lr: LrOpt = None, input_size: SizeOpt = None, seed: SeedOpt = None, sets: SetOpt = None,
    finder_sets: Annotated[list[str] | None, typer.Option(
        "--finder-set", help="Finder hyperparameter key=value (repeatable).")] = None,
    imagenet_weights: Annotated[Path | None, typer.Option(
        "--imagenet-weights", help="Local Keras inception_v3 no-top .h5, or 'imagenet' (Keras' "
        "download and cache): every arm's backbone starts from ImageNet, as in the "
        "paper.")] = None,
    verbose: VerboseOpt = 0,
) -> None:
    """The paper's comparison: full-image CNN vs manual-mask CNN vs U-Net-finder CNN, same
    classifier recipe and splits per repeat; mean ROC AUC +- std per arm, ROC figure, report."""
    from ..experiment import finder_vs_full
    from ..train.profiles import parse_sets

    ov = _overrides(epochs, batch_size, lr, input_size, seed, sets)
    result = finder_vs_full(data, out, train_size=train_size, repeats=repeats, profile=profile,
                            classifier_overrides=ov, finder_overrides=parse_sets(finder_sets),
                            imagenet_weights=imagenet_weights,
                            verbose=_keras_verbosity(verbose))
    typer.echo(json.dumps(result["summary"], indent=2, allow_nan=True))


def register(app: typer.Typer) -> None:
    """Add this area's commands to the main app."""
    train_app = typer.Typer(help="Train the finder, the classifier or the crystal model into a "
                            "bundle.",
                            no_args_is_help=True)
    train_app.command("finder")(train_finder_cmd)
    train_app.command("classifier")(train_classifier_cmd)
    train_app.command("crystals")(train_crystals_cmd)
    app.add_typer(train_app, name="train")
    app.command("evaluate")(evaluate_cmd)
    exp_app = typer.Typer(help="The paper's experiments.", no_args_is_help=True)
    exp_app.command("finder-vs-full")(finder_vs_full_cmd)
    app.add_typer(exp_app, name="experiment")

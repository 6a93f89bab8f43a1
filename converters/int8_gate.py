"""build-engines' INT8 accuracy gate: each INT8 variant against FP32 on held-out images, on this
machine's CPU family, recorded in bundle.json (Bundle.set_int8_gate) for the runtime to obey.

The held-out images are the calibration data's images that did not calibrate (up to
calibration.gate.GATE_IMAGES), made into inputs by the same preprocessing. Where the data set
has too few left, the calibration images themselves are measured, and the record says so
(held_out: false). Where the calibration data is not here at all, nothing is recorded: the
runtime then does not run that variant on this family (it falls back to FP32 and says why).

The TensorRT variant (signed s8 x s8) is measured in ONNX Runtime only where this CPU computes
s8 x s8 exactly (VNNI, ARM64): on x86 without VNNI ONNX Runtime's own kernels would be what
failed, not the variant. A TensorRT engine itself is not gated here (no GPU on this path).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgecrystal import cpu_isa
from edgecrystal.bundle import Bundle
from edgecrystal.errors import DataError
from edgecrystal.interface import INPUT_NAME

if TYPE_CHECKING:
    from edgecrystal.calibration.select import CalibrationSet

    from .calibration_record import CalibrationSettings

    # sets_for(settings, exclude, count): calibration sets of held-out images, by model
    SetsFor = Callable[[CalibrationSettings, frozenset[str], int], dict[str, CalibrationSet]]

# Families whose ONNX Runtime integer kernels compute s8 x s8 exactly.
_EXACT_S8S8 = (cpu_isa.X86_VNNI, cpu_isa.ARM64_I8MM, cpu_isa.ARM64_DOTPROD, cpu_isa.ARM64)


def s8s8_exact() -> bool:
    """Whether ONNX Runtime on this CPU computes the TensorRT variant's s8 x s8 exactly."""
    return cpu_isa.detect().family in _EXACT_S8S8


def gate_variants(bundle: Bundle, model: str, variants: tuple[str, ...],
                  settings: CalibrationSettings, calibration_images: list[dict[str, str]],
                  sets_for: SetsFor,
                  bounds_text: str | None, log: Callable[[str], None],
                  force: bool = False) -> list[tuple[str, bool]]:
    """Gate each of `model`'s INT8 `variants` not yet gated on this CPU family within these
    bounds (all with `force`); returns the one-line verdicts, each with whether it is a pass.
    `sets_for(settings, exclude, count)`: calibration sets of held-out images
    (converters.build's _calibration_sets with an exclusion)."""
    from edgecrystal.calibration.gate import bounds_from, describe, gate_record, same_bounds

    family = cpu_isa.detect().family
    bounds = bounds_from(bounds_text)

    def gated(variant: str) -> bool:
        gate = bundle.int8_gate(model, variant, family)
        return gate is not None and same_bounds(model, gate.get("bounds"), bounds)

    todo = [v for v in variants if bundle.variant(model, v) and (force or not gated(v))
            and (v != "int8" or s8s8_exact())]
    if not todo:
        return []
    inputs, held_out = _held_out_inputs(bundle, model, settings, calibration_images, sets_for)
    if inputs is None:
        line = (f"{model}: INT8 not gated on {family}: calibration data {settings.get('data')} "
                "is not here (the runtime will use fp32 for it on this CPU)")
        log(line)
        return [(line, False)]
    fp32 = _outputs(bundle.path(bundle.variant(model, "fp32")["file"]), inputs)
    verdicts = []
    for variant in todo:
        got = _outputs(bundle.path(bundle.variant(model, variant)["file"]), inputs)
        gate = gate_record(model, got, fp32, family, held_out, bounds,
                           map_threshold(bundle, model))
        bundle.set_int8_gate(model, variant, gate)
        verdicts.append((describe(model, variant, gate), bool(gate["usable"])))
        log(verdicts[-1][0])
    return verdicts


def map_threshold(bundle: Bundle, model: str) -> float:
    """The threshold that turns `model`'s probability map into a mask: the finder's is the
    bundle's; the crystal model's is its section's (0.5 where it records none)."""
    if model == "crystals":
        return float(bundle.require("crystals").get("threshold", 0.5))
    return bundle.threshold


def _held_out_inputs(bundle: Bundle, model: str, settings: CalibrationSettings,
                     calibration_images: list[dict[str, str]], sets_for: SetsFor
                     ) -> tuple[np.ndarray | None, bool]:
    from edgecrystal.calibration.gate import GATE_IMAGES

    data = settings.get("data")
    if not data or not Path(data).exists():
        return None, False
    used = frozenset(image["path"] for image in calibration_images)
    try:
        return sets_for(settings, used, GATE_IMAGES)[model].inputs, True
    except DataError:  # too few images besides the calibration's: measure on those
        return sets_for(settings, frozenset(), settings["count"])[model].inputs, False


def _outputs(path: Path, inputs: np.ndarray, batch: int = 8) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.concatenate([np.asarray(session.run(None, {INPUT_NAME: inputs[i:i + batch]})[0],
                                      np.float64) for i in range(0, len(inputs), batch)])

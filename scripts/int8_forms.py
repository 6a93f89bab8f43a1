"""Measure each ONNX Runtime INT8 form (calibration.quantize.FORMS) with each rewrite left out,
against FP32 on held-out images, on the CPU this runs on (run it under
`qemu-x86_64 -cpu Haswell` for an AVX2 machine without VNNI: agreement only, never speed).

    python scripts/int8_forms.py MODEL.fp32.onnx DATA [--calib 32] [--held-out 32]
        [--method entropy|minmax] [--forms u8s8,u8u8] [--skips none,input_fold]

MODEL's role (finder or classifier) comes from its metadata; inputs are made by the runtime's
preprocessing (finder: the whole well; classifier: the ground-truth-mask crop). Prints one
markdown row per (form, rewrite left out): label agreement (classifier; for the finder: mask
pixels that agree), mask Dice against FP32 (finder), lowest class rank correlation,
max |diff|, and the accuracy gate's verdict.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np


def _inputs(model: Path, data: Path, count: int) -> tuple[str, np.ndarray]:
    import onnx

    from edgecrystal import preprocess
    from edgecrystal.calibration.select import choose, load_pictures
    from edgecrystal.dataset import load_dataset

    meta = {p.key: p.value for p in onnx.load(str(model), load_external_data=False).metadata_props}
    role, size = meta.get("edgecrystal.role", "classifier"), int(meta["edgecrystal.input_size"])
    pictures, _ = load_pictures(choose(load_dataset(data).records, count, 0), count)
    if role == "finder":
        return role, np.stack([preprocess.finder_input(p, size) for _, p, _, _ in pictures])
    return role, np.stack([(preprocess.crop_drop(p, m, size) if m is not None else
                            preprocess.full_image(p, size)).pixels for _, p, _, m in pictures])


def _run(path: Path, inputs: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.concatenate([session.run(None, {"pixels": inputs[i:i + 8]})[0]
                           for i in range(0, len(inputs), 8)]).astype(np.float64)


def main() -> None:
    from edgecrystal.calibration.gate import gate_record
    from edgecrystal.calibration.quantize import FORMS
    from edgecrystal.converters.int8_variant import REWRITES, int8_variant
    from edgecrystal.cpu_isa import detect

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("data", type=Path)
    parser.add_argument("--calib", type=int, default=32)
    parser.add_argument("--held-out", type=int, default=32)
    parser.add_argument("--method", default="entropy",
                        help="calibration method (minmax is much faster under emulation)")
    parser.add_argument("--forms", default="s8s8," + ",".join(FORMS),
                        help="comma-separated: s8s8 (TensorRT's file) and calibration.quantize "
                             "FORMS")
    parser.add_argument("--skips", default="none," + ",".join(REWRITES),
                        help="comma-separated rewrites to leave out one at a time (none: all "
                             "applied)")
    args = parser.parse_args()
    forms, skips = args.forms.split(","), args.skips.split(",")
    role, inputs = _inputs(args.model, args.data, args.calib + args.held_out)
    calibration, held_out = inputs[:args.calib], inputs[args.calib:]
    family = detect().describe()
    fp32 = _run(args.model, held_out)
    print(f"{role} {args.model.name}: {len(calibration)} calibration, {len(held_out)} held-out "
          f"images, {args.method} calibration; cpu {family}", flush=True)
    print("| form | rewrite left out | agreement | Dice vs FP32 | lowest rho | max abs diff "
          "| gate |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        cases = [("s8s8 (TensorRT's file)", "-")] if "s8s8" in forms else []
        cases += [(form, skipped) for form in FORMS if form in forms for skipped in skips]
        for form, skipped in cases:
            out = Path(tmp) / "int8.onnx"
            if form in FORMS:
                skip = frozenset() if skipped == "none" else frozenset({skipped})
                int8_variant(args.model, out, calibration, "onnxruntime", args.method,
                             form=form, skip=skip)
            else:
                int8_variant(args.model, out, calibration, "tensorrt", args.method)
            got = _run(out, held_out)
            gate = gate_record(role, got, fp32, family, True)
            print(f"| {form} | {skipped} | {gate['agreement']:.3f} | "
                  f"{gate.get('dice', float('nan')):.3f} | "
                  f"{gate.get('min_rank_correlation', float('nan')):.3f} | "
                  f"{np.abs(got - fp32).max():.3f} | "
                  f"{'pass' if gate['usable'] else 'fail'} |", flush=True)


if __name__ == "__main__":
    main()

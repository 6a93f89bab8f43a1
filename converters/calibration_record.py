"""What calibrated a model's INT8 variants, as build-engines records it (bundle.json's INT8 key
and calibration/<model>.json) and the INT8 gate reads it back: the calibration settings, the
variants' key, the record."""

from __future__ import annotations

from typing import TypedDict


class CalibrationSettings(TypedDict, total=False):
    """What calibrates a model's INT8 variants (part of their key: a change re-quantizes).
    build.calibration_settings gives all four; a record read back may lack some."""

    data: str | None  # the image folder, resolved
    count: int
    seed: int
    method: str  # calibration.quantize.METHODS


class Int8Key(TypedDict):
    """The INT8 variants' key in bundle.json: equal keys mean the files can be kept."""

    sha256_source: str  # the FP32 ONNX's
    quantizer: str
    calibration: CalibrationSettings
    form: str  # the ONNX Runtime variant's integer form (by CPU family)


class CalibrationRecord(TypedDict, total=False):
    """calibration/<model>.json, as build._write_record writes it (read back: keys may be
    missing)."""

    model: str
    data: str | None
    key: CalibrationSettings
    sha256_source: str
    quantizer: str
    crop: str | None
    images: list[dict[str, str]]  # path (relative), sha256, label
    variants: dict[str, dict[str, object]]  # int8_variant's summary of each variant
    ort_choice: dict[str, object]
    trt_cache: str
    scales: dict[str, object]

"""ONNX files as edgecrystal writes them, whatever made them (the Keras export, the precision
converters, `edgecrystal import`): where a variant lives in a bundle, the opsets, the batch
dimension's name, the edgecrystal.* metadata, an atomic save. TensorFlow-free; onnx and
onnxruntime load inside the functions that need them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import onnx

OPSETS = range(13, 18)
DEFAULT_OPSET = 17
BATCH_DIM = "batch"
META_PREFIX = "edgecrystal."


def onnx_rel(model: str, variant: str) -> str:
    return f"onnx/{model}.{variant}.onnx"


def set_metadata(proto: onnx.ModelProto, values: dict[str, str]) -> None:
    """Set edgecrystal.* metadata_props (replacing earlier values of the same keys)."""
    keep = [p for p in proto.metadata_props
            if not p.key.startswith(META_PREFIX) or p.key[len(META_PREFIX):] not in values]
    del proto.metadata_props[:]
    proto.metadata_props.extend(keep)
    for key, value in values.items():
        prop = proto.metadata_props.add()
        prop.key, prop.value = META_PREFIX + key, str(value)


def read_metadata(path: Path) -> dict[str, str]:
    """edgecrystal.* metadata of an ONNX file, via onnxruntime (no onnx needed)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    props = sess.get_modelmeta().custom_metadata_map
    return {k[len(META_PREFIX):]: v for k, v in props.items() if k.startswith(META_PREFIX)}


def save_model(proto: onnx.ModelProto, out: Path) -> None:
    from edgecrystal.atomic import write_bytes

    write_bytes(out, proto.SerializeToString())

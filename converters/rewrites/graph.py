"""What the graph rewrites ask of an ONNX graph: who reads a tensor."""

from __future__ import annotations

from typing import Any


def readers(graph: Any) -> dict[str, list[Any]]:
    """Tensor name -> the nodes of `graph` (an onnx.GraphProto) that read it, in graph order."""
    readers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    return readers

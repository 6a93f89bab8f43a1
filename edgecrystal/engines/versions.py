"""The version matrix in one place: JetPack -> TensorRT -> CUDA -> DLA -> the extra to install.

Refusal messages (`dla_problem`, `hardware_compat` on a Jetson), `edgecrystal doctor` and
docs/jetson.md (`markdown_table`) all read these rows, so a JetPack release is added here once.
Facts from NVIDIA's TensorRT release notes and "Working with DLA" pages: TensorRT 10.7 was the
last 10.x release with DLA; 11.0 to 11.3 have none; 11.4.0 has DLA on Windows on ARM only;
11.4.1 brings it back on Jetson AGX Orin with JetPack 7.2.2 or later (strongly typed networks).
Hardware-compatible (AMPERE_PLUS) engines are documented for Ampere-and-newer desktop GPUs and
not supported on JetPack, so a Jetson never builds or loads them.
Standard library only: the daemon and `doctor` import this without TensorRT.
"""

from __future__ import annotations

from dataclasses import dataclass

# Compute capabilities of Jetson (integrated) GPUs: Nano/TX1 5.3, TX2 6.2, Xavier 7.2, Orin 8.7,
# Thor 10.1 (CUDA 12.8 numbering) / 11.0 (CUDA 13 numbering).
JETSON_SM = {(5, 3), (6, 2), (7, 2), (8, 7), (10, 1), (11, 0)}


@dataclass(frozen=True)
class Release:
    jetpack: str
    l4t: str
    tensorrt: str
    cuda: str
    dla: str  # which boards have DLA with this release ("" : none)
    extra: str  # the edgecrystal extra of this CUDA major ("" : edgecrystal does not run)
    note: str = ""


MATRIX: tuple[Release, ...] = (
    Release("5.1", "r35", "8.5", "11.4", "Xavier, Orin NX, AGX Orin", "",
            "Python 3.8: edgecrystal needs 3.10+ (the ONNX files still build with trtexec)"),
    Release("6.0", "r36.3", "8.6", "12.2", "Orin NX, AGX Orin (Orin Nano: none)",
            "tensorrt-cu12"),
    Release("6.1 / 6.2", "r36.4", "10.3", "12.6", "Orin NX, AGX Orin (Orin Nano: none)",
            "tensorrt-cu12"),
    Release("7.0 / 7.1", "r38", "10.13", "13.0", "",
            "tensorrt-cu13", "TensorRT 10.8+ has no DLA"),
    Release("7.2.2+", "r38", "11.4.1", "13.x", "AGX Orin only (strongly typed networks)",
            "tensorrt-cu13"),
)


def parse(version: str) -> tuple[int, int, int]:
    """'10.3.0.26' -> (10, 3, 0); missing parts are 0."""
    parts = [*str(version).split("."), "0", "0"][:3]
    out = []
    for part in parts:
        digits = "".join(ch for ch in part if ch.isdigit())
        out.append(int(digits or 0))
    return out[0], out[1], out[2]


def dla_problem(tensorrt: str) -> str | None:
    """None where TensorRT `tensorrt` has DLA on Jetson; otherwise why not and what to do, one
    sentence (the board itself is asked separately: Builder.num_DLA_cores)."""
    major, minor, patch = parse(tensorrt)
    if (major, minor) <= (10, 7):
        return None
    if (major, minor, patch) >= (11, 4, 1) and (major, minor) == (11, 4):
        return None
    fix = ("use JetPack 6 (TensorRT 10.3, the last DLA line is 10.7) or TensorRT 11.4.1 on an "
           "AGX Orin with JetPack 7.2.2+, or drop --dla-core / dla_core to run on the GPU")
    if major == 10:
        return f"TensorRT {tensorrt} has no DLA (10.7 was the last 10.x with DLA); {fix}"
    if (major, minor) == (11, 4):
        return f"TensorRT {tensorrt} has DLA on Windows on ARM only (11.4.1 adds Jetson); {fix}"
    return f"TensorRT {tensorrt} has no DLA on Jetson; {fix}"


def is_jetson(compute_capability: str) -> bool:
    major, _, minor = str(compute_capability).partition(".")
    try:
        return (int(major), int(minor or 0)) in JETSON_SM
    except ValueError:
        return False


def release_for(tensorrt: str | None) -> Release | None:
    """The JetPack row whose TensorRT line this is (major.minor), or None."""
    if not tensorrt:
        return None
    want = parse(tensorrt)[:2]
    for row in MATRIX:
        if parse(row.tensorrt)[:2] == want:
            return row
    return None


def markdown_table() -> str:
    """The matrix as docs/jetson.md prints it (a test keeps the two equal)."""
    lines = ["| JetPack | L4T | TensorRT | CUDA | DLA | extra | note |",
             "|---|---|---|---|---|---|---|"]
    for row in MATRIX:
        extra = f"`edgecrystal[{row.extra}]`" if row.extra else "none"
        lines.append(f"| {row.jetpack} | {row.l4t} | {row.tensorrt} | {row.cuda} | "
                     f"{row.dla or 'none'} | {extra} | {row.note} |")
    return "\n".join(lines)

"""Precision advice (edgecrystal/runtime/advice.py): INT8 only where it passed the accuracy gate
on this CPU family and is faster here; `serve` with precision = "auto" takes it and logs why,
as a real subprocess over the fast bundle's real variants."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgecrystal import cpu_isa
from edgecrystal.bundle import Bundle
from edgecrystal.runtime.advice import advise, auto_precision


def test_the_rule() -> None:
    assert advise(20.0, 10.0, None).precision == "int8"
    assert advise(20.0, 19.0, None).precision == "fp32"  # within INT8_AT_MOST: not worth it
    assert advise(20.0, 30.0, None).precision == "fp32"
    refused = advise(20.0, 5.0, "finder int8-u8 failed the gate")
    assert refused.precision == "fp32" and "not known to be faithful" in refused.reason
    assert advise(None, 5.0, None).precision == "fp32"


def test_auto_measures_here_and_respects_the_family(
        fast_bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    here = auto_precision(Bundle.open(fast_bundle), threads=1)
    assert here.precision in ("fp32", "int8") and " ms against fp32 " in here.reason
    checked = Bundle.open(fast_bundle).variant("classifier", "int8-u8")["gate"]
    monkeypatch.setenv("EDGECRYSTAL_CPU_FAMILY",
                       next(f for f in cpu_isa.FAMILIES if f not in checked))
    elsewhere = auto_precision(Bundle.open(fast_bundle), threads=1)
    assert elsewhere.precision == "fp32" and "not on this CPU" in elsewhere.reason


def test_serve_with_precision_auto_logs_the_choice(fast_bundle: Path, tmp_path: Path) -> None:
    from onnx_fixtures import write_wells

    images = write_wells(tmp_path / "plate", 2)
    config = tmp_path / "serve.toml"
    config.write_text(f'bundle = "{fast_bundle}"\nwatch = ["{tmp_path / "plate"}"]\n'
                      'settle_ms = 100\nprecision = "auto"\nthreads = 1\n')
    done = subprocess.run([sys.executable, "-m", "edgecrystal", "serve", "--config", str(config),
                           "--once"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")})
    assert done.returncode == 0, done.stderr
    chosen = [line for line in done.stderr.splitlines() if "precision auto: " in line]
    assert len(chosen) == 1, done.stderr
    precision = chosen[0].split("precision auto: ")[1].split(":")[0]
    model = json.loads(Path(f"{images[0]}.edgecrystal.json").read_text())["model"]
    assert model["precision"] == precision

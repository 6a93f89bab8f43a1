"""The daemon's first-start engine build as `systemctl status` shows it: `edgecrystal serve` as
a real subprocess whose tensorrt and cuda-python are the fakes of tests/fakes (TensorRT 10.3 on
an Orin with two DLA cores, put in place by a sitecustomize module), the classifier on DLA core
0 by the config's dla_core. The build's progress arrives as sd_notify STATUS= lines before
READY=1 (with watchdog pings), and the log says where the layers run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fakes.onnx_models import onnx_bundle
from fakes.site import write_sitecustomize
from test_daemon import ServeProcess, write_config

pytestmark = pytest.mark.trt_api

SITE = """
gpu = FakeGpu(name="Orin", major=8, minor=7, driver=12060, dla_cores=2)
install_tensorrt(Modules(), "10.3", gpu)
install_cuda_python(Modules(), gpu, "12.6")
sys.modules["pycuda"] = None
"""


def test_first_start_build_reports_status_then_ready(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    write_sitecustomize(site, SITE)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(site), *filter(None, [os.environ.get("PYTHONPATH")])]))
    bundle = onnx_bundle(tmp_path / "bundle")
    watch = tmp_path / "plates"
    watch.mkdir()
    config = write_config(tmp_path / "serve.toml", bundle.root, watch, backend="tensorrt",
                          precision="fp16")
    with config.open("a") as fh:
        fh.write("dla_core = { classifier = 0 }\n")
    daemon = ServeProcess(tmp_path, config)
    try:
        ready = next(i for i, m in enumerate(daemon.messages) if "READY=1" in m)
        before = "\n".join(daemon.messages[:ready])
        assert "STATUS=building classifier fp16 engine for dla0 (TensorRT 10.3.0) ..." in before
        assert "STATUS=built classifier fp16 engine for dla0 (TensorRT 10.3.0) in " in before
        # The build pings the watchdog (armed during a SIGHUP reload's build); nothing else
        # pings before READY=1.
        assert "WATCHDOG=1" in before
        daemon.wait_for_log("on dla0 (", 10)
        assert "layers on DLA" in daemon.text()
    finally:
        assert daemon.stop() == 0
    plan = bundle.root / "engines" / "orin-sm87-trt10.3.0" / "classifier.fp16.dla0.plan"
    assert plan.is_file()

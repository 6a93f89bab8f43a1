"""Runners on real ONNX Runtime sessions; backend selection; TensorRT on a GPU only."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgecrystal.bundle import Bundle
from edgecrystal.errors import BackendError, BundleError
from edgecrystal.runtime.onnxruntime_runner import OnnxRuntimeRunner, physical_cores
from edgecrystal.runtime.select import open_runners


def test_onnxruntime_runner_io_and_casting(fast_bundle: Path) -> None:
    b = Bundle.open(fast_bundle)
    size = b.section("finder")["input_size"]
    with OnnxRuntimeRunner(b.onnx_variant("finder", "fp32"), threads=1) as r:
        assert r.inputs[0].shape[1:] == (size, size, 3)
        assert r.inputs[0].shape[0] is None  # dynamic batch
        assert r.input_size == size
        x = np.random.default_rng(0).integers(0, 256, (3, size, size, 3), dtype=np.uint8)
        out = r.predict(x)
        assert out.shape == (3, size, size, 1)
        assert np.all((out >= 0) & (out <= 1))
        # A float array holding the same pixel values gives the same answer (cast to the input).
        np.testing.assert_allclose(r.predict(x.astype(np.float32)), out, atol=1e-6)
        by_name = r.infer({r.inputs[0].name: x})
        np.testing.assert_allclose(next(iter(by_name.values())), out, atol=1e-6)
        r.max_batch = 2  # what a TensorRT profile imposes: split, same answer
        np.testing.assert_allclose(r.predict(x), out, atol=1e-6)
        with pytest.raises(BackendError, match="shape"):
            r.predict(np.zeros((1, size + 1, size, 3), np.uint8))
        with pytest.raises(BackendError, match="missing"):
            r.infer({"nope": x})
    with pytest.raises(BackendError, match="closed"):
        r.predict(x)


def _thread_affinities() -> dict[str, str]:
    """Each thread of this process: its allowed-CPU list as the kernel reports it."""
    out = {}
    for task in Path("/proc/self/task").iterdir():
        for line in (task / "status").read_text().splitlines():
            if line.startswith("Cpus_allowed_list:"):
                out[task.name] = line.split(":", 1)[1].strip()
    return out


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
def test_default_threads_are_explicit_and_not_pinned(fast_bundle: Path) -> None:
    """threads=0 gives one intra-op thread per physical core, none pinned to a core: a pinned
    worker shared its core with the calling thread after every fsync'd result (2x latency)."""
    import os

    assert 1 <= physical_cores() <= len(os.sched_getaffinity(0))
    process = _thread_affinities()[str(os.getpid())]
    before = set(_thread_affinities())
    with OnnxRuntimeRunner(Bundle.open(fast_bundle).onnx_variant("finder", "fp32")) as r:
        opened = {t: cpus for t, cpus in _thread_affinities().items() if t not in before}
        assert r.session.get_session_options().intra_op_num_threads == physical_cores()
        entries = r.session.get_session_options().get_session_config_entry
        assert entries("session.intra_op.allow_spinning") == "1"
        assert entries("session.force_spinning_stop") == "1"
    assert len(opened) >= physical_cores() - 1  # the workers (the caller is the last one)
    assert all(cpus == process for cpus in opened.values()), opened


def test_onnxruntime_missing_provider_is_one_line(fast_bundle: Path) -> None:
    b = Bundle.open(fast_bundle)
    with pytest.raises(BackendError, match=r"no .*ExecutionProvider"):
        OnnxRuntimeRunner(b.onnx_variant("finder", "fp32"), providers=["NoSuchExecutionProvider"])


def test_bad_onnx_file_is_backend_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    runner = OnnxRuntimeRunner(bad)  # lazy: nothing is loaded until the runner activates
    assert not runner.active
    with pytest.raises(BackendError, match="cannot load"):
        runner.activate()
    assert not runner.active
    with pytest.raises(BackendError, match="cannot load"), OnnxRuntimeRunner(bad):
        pass  # entering a `with` block activates


def test_runner_activates_on_first_use_and_deactivates(fast_bundle: Path) -> None:
    """Polygraphy's shape: made cheap, loaded by activate() or the first infer, freed by
    deactivate() and loaded again by the next use; a closed runner refuses."""
    b = Bundle.open(fast_bundle)
    size = b.section("classifier")["input_size"]
    x = np.random.default_rng(3).integers(0, 256, (2, size, size, 3), dtype=np.uint8)
    runner = OnnxRuntimeRunner(b.onnx_variant("classifier", "fp32"), threads=1)
    assert not runner.active and not runner.inputs and not hasattr(runner, "session")
    first = runner.predict(x)
    assert runner.active and runner.inputs
    runner.deactivate()
    assert not runner.active and not hasattr(runner, "session")
    np.testing.assert_array_equal(runner.predict(x), first)  # loaded again
    runner.close()
    assert not runner.active
    with pytest.raises(BackendError, match="closed"):
        runner.activate()


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None,
                    reason="TensorRT installed: auto would pick it")
def test_auto_falls_back_to_onnxruntime_and_says_why(fast_bundle: Path) -> None:
    selection = open_runners(Bundle.open(fast_bundle), backend="auto", threads=1)
    try:
        assert selection.backend == "onnxruntime"
        assert "tensorrt" in selection.reason.lower()
        assert selection.finder is not None and selection.classifier is not None
    finally:
        selection.close()
    with pytest.raises(BackendError, match="tensorrt"):
        open_runners(Bundle.open(fast_bundle), backend="tensorrt")


def test_selection_refuses_unknown_and_missing_variants(fast_bundle: Path,
                                                       tmp_path: Path) -> None:
    b = Bundle.open(fast_bundle)
    with pytest.raises(BackendError, match="unknown backend"):
        open_runners(b, backend="keras")
    with pytest.raises(BackendError, match="unknown precision"):
        open_runners(b, backend="onnxruntime", precision="fp8")
    # The same bundle without its INT8 variants: asking for int8 is a one-line refusal.
    shutil.copytree(fast_bundle, tmp_path / "bundle")
    without = Bundle.open(tmp_path / "bundle")
    for model in ("finder", "classifier"):
        variants = without.meta["onnx"][model]
        for name in [n for n, v in variants.items() if v.get("precision") == "int8"]:
            del variants[name]
    without.save()
    with pytest.raises(BundleError, match="int8"):
        open_runners(Bundle.open(tmp_path / "bundle"), backend="onnxruntime", precision="int8")


@pytest.mark.gpu
def test_tensorrt_runner_matches_onnxruntime(fast_bundle: Path) -> None:
    pytest.importorskip("tensorrt")
    try:
        selection = open_runners(Bundle.open(fast_bundle), backend="tensorrt")
    except BackendError as exc:
        pytest.skip(f"no usable TensorRT here: {exc}")
    b = Bundle.open(fast_bundle)
    size = b.section("classifier")["input_size"]
    x = np.random.default_rng(1).integers(0, 256, (5, size, size, 3), dtype=np.uint8)
    try:
        with OnnxRuntimeRunner(b.onnx_variant("classifier", "fp32")) as ref:
            np.testing.assert_allclose(selection.classifier.predict(x), ref.predict(x), atol=1e-3)
        timings = getattr(selection.classifier, "last_timings", {})
        assert set(timings) == {"h2d_ms", "compute_ms", "d2h_ms"}
    finally:
        selection.close()

"""Shared fixtures. Helpers only append fixtures here.

Two tiers: `pytest -m "not slow"` (the fast tier) needs no TensorFlow, Keras or tf2onnx; its
models come from `fast_bundle` (onnx.helper graphs, tests/onnx_fixtures.py). Tests that use the
Keras fixtures (`untrained_bundle`, `onnx_bundle`, `trained_bundle`) or training/export code are
marked `slow`; collection refuses an unmarked one. TF-free tests that take many seconds (daemon
bursts, a Ray instance) are marked `slow` too, to keep the fast tier under 2 minutes. With
EDGECRYSTAL_BLOCK_TF=1 those imports fail, in this process and in every subprocess the tests
start (tests/tf_blocked/).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REAL_SAMPLES = REPO.parent / "shared" / "real-samples"
TF_BLOCK_DIR = Path(__file__).resolve().parent / "tf_blocked"
KERAS_FIXTURES = ("untrained_bundle", "onnx_bundle", "trained_bundle")


def _block_tensorflow() -> None:
    """Make tensorflow/keras/tf2onnx imports fail here and in child Pythons (PYTHONPATH)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("edgecrystal_tf_block",
                                                  TF_BLOCK_DIR / "sitecustomize.py")
    assert spec is not None and spec.loader is not None
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    hook.install()
    rest = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TF_BLOCK_DIR), rest]))


if os.environ.get("EDGECRYSTAL_BLOCK_TF") == "1":
    _block_tensorflow()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test that builds Keras models must say so: unmarked, the fast tier would need TF."""
    unmarked = [item.nodeid for item in items
                if set(KERAS_FIXTURES) & set(getattr(item, "fixturenames", ()))
                and item.get_closest_marker("slow") is None]
    if unmarked:
        raise pytest.UsageError("these tests use Keras fixtures but are not marked slow: "
                                + ", ".join(unmarked))


@pytest.fixture(scope="session")
def real_samples() -> Path:
    """The real drop photos beside the checkout (never copied into the repo)."""
    if not (REAL_SAMPLES / "labels.csv").is_file():
        pytest.skip("../shared/real-samples is not beside this checkout")
    return REAL_SAMPLES


def build_untrained_bundle(root: Path, finder_size: int = 64, classifier_size: int = 75) -> Path:
    """A bundle with tiny, untrained (seeded) Keras models: enough for export, conversion and
    runtime plumbing tests that need real models but no accuracy."""
    from edgecrystal import DEFAULT_CLASSES
    from edgecrystal.bundle import Bundle
    from edgecrystal.models import _keras, build_classifier, build_finder

    _keras().utils.set_random_seed(0)
    bundle = Bundle.open(root, create=True, classes=DEFAULT_CLASSES)
    finder = build_finder(finder_size, base_filters=4, depth=4)
    classifier = build_classifier(len(DEFAULT_CLASSES), classifier_size)
    finder.save(root / "finder.keras")
    classifier.save(root / "classifier.keras")
    bundle.section("finder").update(
        {"model": "finder.keras", "input_size": finder_size, "base_filters": 4, "depth": 4,
         "profile": "untrained", "threshold": 0.5}
    )
    bundle.section("classifier").update(
        {"model": "classifier.keras", "input_size": classifier_size, "crop": "finder",
         "margin": 0.05, "profile": "untrained"}
    )
    bundle.register_file("finder.keras")
    bundle.register_file("classifier.keras")
    bundle.save()
    return root


@pytest.fixture(scope="session")
def untrained_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Session-wide untrained tiny bundle (Keras files only). Copy it before changing it."""
    return build_untrained_bundle(tmp_path_factory.mktemp("untrained") / "bundle")


@pytest.fixture(scope="session")
def onnx_bundle(untrained_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the untrained tiny bundle with fp32 ONNX for both models (exported once per
    session; copy it before changing it)."""
    import shutil

    from edgecrystal.bundle import Bundle
    from edgecrystal.converters.keras_to_onnx import export_bundle

    root = tmp_path_factory.mktemp("onnx") / "bundle"
    shutil.copytree(untrained_bundle, root)
    export_bundle(Bundle.open(root))
    return root


@pytest.fixture(scope="session")
def trained_bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A bundle trained with the `tiny` profile on 24 synthetic 128 px images: finder (2 epochs)
    and classifier on finder crops (1 epoch). Returns (bundle_path, data_path). Tiny and barely
    trained: for plumbing tests, not for accuracy."""
    from edgecrystal.synth import generate_dataset
    from edgecrystal.train import train_classifier, train_finder

    root = tmp_path_factory.mktemp("trained")
    data, bundle = root / "data", root / "bundle"
    generate_dataset(data, 24, seed=3, size=128)
    train_finder(data, bundle, profile="tiny", overrides={"epochs": 2})
    train_classifier(data, bundle, crop="finder", profile="tiny", overrides={"epochs": 1})
    return bundle, data


@pytest.fixture(scope="session")
def fast_calibration_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight small synthetic images with labels: enough to calibrate the fast INT8 variants."""
    from edgecrystal.synth.generate import generate_dataset

    out = tmp_path_factory.mktemp("fast-calib") / "data"
    generate_dataset(out, 8, seed=3, size=96, workers=1)
    return out


@pytest.fixture(scope="session")
def fast_bundle(tmp_path_factory: pytest.TempPathFactory, fast_calibration_data: Path) -> Path:
    """A complete bundle without TensorFlow: onnx.helper finder (marks light drops on a dark
    plate) and classifier, fp32 + fp16 + int8 ONNX, calibration records. Copy it before
    changing it."""
    from onnx_fixtures import add_precision_variants, build_fast_bundle

    root = build_fast_bundle(tmp_path_factory.mktemp("fast") / "bundle")
    return add_precision_variants(root, fast_calibration_data)


@pytest.fixture(scope="session")
def postgres():  # -> index_helpers.PostgresServer
    """A real PostgreSQL server for the session (Debian's, in a temporary folder, run as the
    `postgres` user under root); skipped where PostgreSQL is not installed."""
    from index_helpers import postgres_server

    with postgres_server() as server:
        yield server


@pytest.fixture(scope="session", autouse=True)
def private_state_home(tmp_path_factory: pytest.TempPathFactory) -> None:
    """serve keeps its default index under $XDG_STATE_HOME/edgecrystal: tests' daemons (and
    the daemons they start) write to a temporary one, never the user's."""
    import os

    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("state-home"))
    os.environ.pop("STATE_DIRECTORY", None)


def pytest_report_header(config: pytest.Config) -> str:
    """Which CPU family the run is on: INT8 numbers depend on it (edgecrystal/cpu_isa.py)."""
    from edgecrystal.cpu_isa import detect

    return f"edgecrystal cpu family: {detect().describe()}"


@pytest.fixture(scope="session")
def crystals_bundle(tmp_path_factory: pytest.TempPathFactory, fast_bundle: Path,
                    fast_calibration_data: Path) -> Path:
    """The fast bundle with a crystal model (onnx_fixtures.add_crystals) and everything
    build-engines makes of it: fp16, int8 and int8-u8 variants, their calibration record and
    gate. Its models are recorded as imported (their FP32 ONNX are the sources: no Keras).
    Copy it before changing it."""
    import shutil

    from onnx_fixtures import add_crystals

    from edgecrystal.bundle import Bundle
    from edgecrystal.converters.build import Options, build_engines

    root = tmp_path_factory.mktemp("crystals") / "bundle"
    shutil.copytree(fast_bundle, root)
    bundle = Bundle.open(root)
    for model in ("finder", "classifier"):
        bundle.section(model)["imported"] = {"format": "ONNX (test fixture)"}
    bundle.save()
    add_crystals(root)
    build_engines(root, Options(calib=fast_calibration_data, calib_count=8))
    return root

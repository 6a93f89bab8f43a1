"""The shipped default bundle (edgecrystal/pretrained/bundle/): the shipped finder and the shipped
classifier, FP32 and INT8 ONNX, provenance; `models path bundle`; `score` and `serve` use it when
no bundle is given; and what it scores on synthetic wells it never saw (real ONNX Runtime
sessions through the runtime's pipeline, no TensorFlow)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edgecrystal.bundle import Bundle
from edgecrystal.daemon.config import load_config
from edgecrystal.evaluate import evaluate
from edgecrystal.imageio import write_image
from edgecrystal.pretrained import bundle_path, classifier_path, default_bundle_path
from edgecrystal.scoring import bundle_and_paths
from edgecrystal.synth.generate import image_rng
from edgecrystal.synth.scene import render_any

CLASSES = ("clear", "crystals", "precipitate", "other")


def _edgecrystal(*args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgecrystal", *args], capture_output=True,
                          text=True, timeout=timeout, check=False)


def _wells(root: Path, n: int, seed: int, styles: tuple[str, ...],
           folders: bool = False) -> Path:
    """n wells of every class in turn (class folders when `folders`, named as MARCO's are:
    Clear, Crystals, Precipitate, Other)."""
    root.mkdir(parents=True)
    for i in range(n):
        label = CLASSES[i % len(CLASSES)]
        rgb, _, _ = render_any(image_rng(seed, i), 480, 360, label, styles[i % len(styles)])
        folder = root / label.capitalize() if folders else root
        folder.mkdir(exist_ok=True)
        write_image(folder / f"well_{i:03d}.jpg", rgb)
    return root


def test_files_variants_and_provenance() -> None:
    b = Bundle.open(default_bundle_path())
    assert b.verify_files() == []
    b.check_preprocess()
    assert b.classes == list(CLASSES)
    for model in ("finder", "classifier"):
        for precision in ("fp32", "int8"):
            assert b.variant_for(model, precision, "onnxruntime") is not None, (model, precision)
            b.onnx_variant(model, precision)  # present, current, hash-checked
    assert b.stale_variants() == []
    total = sum((b.root / rel).stat().st_size for rel in b.meta["files"])
    assert total < 25_000_000  # the wheel stays under 30 MB
    # The finder is the shipped finder, byte for byte.
    shipped = Bundle.open(bundle_path("finder"))
    assert b.meta["files"]["finder.keras"] == shipped.meta["files"]["finder.keras"]
    section = b.require("classifier")
    assert section["backbone"] == "mobilenet_v3_small" and section["crop"] == "finder"
    provenance = b.meta["provenance"]
    assert "scripts/build_default_classifier.py" in provenance["command"]
    assert isinstance(provenance["seed"], int)
    held = provenance["metrics"]["heldout_synthetic_imagers"]
    assert held["images"] > 0 and held["runtime"] == "onnxruntime fp32"
    assert classifier_path().is_file() and classifier_path().parent == b.root


def test_models_path_bundle() -> None:
    done = _edgecrystal("models", "path", "bundle")
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()) == default_bundle_path()


def test_score_without_a_bundle_uses_the_default(tmp_path: Path) -> None:
    plate = _wells(tmp_path / "plate", 2, seed=5, styles=("marco",))
    done = _edgecrystal("score", str(plate), "--backend", "onnxruntime")
    assert done.returncode == 0, done.stderr
    results = sorted(plate.glob("*.edgecrystal.json"))
    assert len(results) == 2
    for path in results:
        rec = json.loads(path.read_text())
        assert rec["model"]["bundle"] == str(default_bundle_path().resolve())
        assert rec["label"] in CLASSES


def test_which_argument_is_the_bundle(fast_bundle: Path, tmp_path: Path) -> None:
    image = tmp_path / "a.jpg"
    write_image(image, render_any(image_rng(1, 0), 200, 160, "clear", "marco")[0])
    assert bundle_and_paths(fast_bundle, [image]) == (fast_bundle, [image])
    assert bundle_and_paths(tmp_path, []) == (default_bundle_path(), [tmp_path])
    assert bundle_and_paths(image, [tmp_path]) == (default_bundle_path(), [image, tmp_path])
    # A bundle that is not there, followed by paths: still the bundle (its error names it).
    missing = tmp_path / "no-bundle"
    assert bundle_and_paths(missing, [image]) == (missing, [image])


def test_serve_config_without_a_bundle_uses_the_default(tmp_path: Path) -> None:
    cfg = load_config(None, {"watch": [str(tmp_path)]})
    assert Path(cfg.bundle) == default_bundle_path()


@pytest.mark.parametrize("styles", [("random",), ("marco", "formulatrix", "brightfield",
                                                  "minstrel")])
@pytest.mark.slow  # TF-free but seconds long: the slow tier keeps the fast one under 2 min
def test_scores_unseen_synthetic_wells(tmp_path: Path, styles: tuple[str, ...]) -> None:
    """Seeds far from the training and held-out sets': the deployed classifier (ONNX Runtime,
    the shipped finder's crops) ranks every class well above chance. Its 200-well held-out
    figures (bundle.json) are macro 0.85-0.88, crystals vs rest 0.71-0.74; 48 wells are noisier,
    hence the margins."""
    data = _wells(tmp_path / "wells", 48, seed=515151, styles=styles, folders=True)
    (data / "Clear" / "broken.jpg").write_bytes(b"not an image")  # left out, said, not fatal
    c = evaluate(data, None, tmp_path / "ev")["classifier"]
    assert c["runtime"] == "onnxruntime fp32"
    assert c["images"] == 48 and [n["image"] for n in c["not_scored"]] == ["Clear/broken.jpg"]
    assert "Clear/broken.jpg" in (tmp_path / "ev" / "report.md").read_text()
    assert c["roc_auc"]["macro"] > 0.75, c["roc_auc"]
    assert c["crystals_vs_rest_auc"] > 0.6, c["roc_auc"]


def test_its_finder_keeps_the_shipped_finders_provenance(tmp_path: Path) -> None:
    # The default bundle's top-level provenance is its classifier's: a bundle adopting the
    # finder from it gets the finder's own record, not that one.
    default = Bundle.open(default_bundle_path())
    made_by = default.meta["finder"]["provenance"]["command"]
    assert "build_default_finder.py" in made_by
    assert default.meta["finder"]["adopted_from"] == "edgecrystal.pretrained/finder"
    other = Bundle.open(tmp_path / "b", create=True)
    other.adopt_finder(default)
    assert other.meta["finder"]["provenance"]["command"] == made_by
    assert other.meta["finder"]["adopted_from"] == str(default.root.resolve())

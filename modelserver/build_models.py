"""Train the reference digits models and write them with a manifest and the held-out test set.

Everything comes from scikit-learn's bundled digits data (no downloads) and takes seconds on a CPU. Outputs:
`digits.onnx` (MLP), `digits-int8.onnx` (its dynamic int8 quantization), `digits-weak.onnx` (a linear model
on a 4×4 thumbnail), `test_set.json` and `manifest.json`. Re-running is a no-op while the outputs are newer
than this code, unless `--force`.

Usage: python -m modelserver.build_models --out models/ [--force]
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort
import orjson
from onnxruntime.quantization import QuantType, quantize_dynamic
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

from modelserver import onnx_graphs, testset

SEED = 0
TEST_SIZE = 0.3
INPUT_SCALE = 1 / 16  # load_digits pixels are 0..16; the graphs scale them so clients send raw values
FP32, INT8, WEAK = "digits", "digits-int8", "digits-weak"
MODEL_NAMES = (FP32, INT8, WEAK)
TEST_SET_FILE = "test_set.json"
MANIFEST_FILE = "manifest.json"
OUTPUT_FILES = (*(f"{n}.onnx" for n in MODEL_NAMES), TEST_SET_FILE, MANIFEST_FILE)
SOURCES = (Path(__file__), Path(onnx_graphs.__file__), Path(testset.__file__))
DESCRIPTIONS = {
    FP32: "MLP, 64 hidden ReLU units, fp32",
    INT8: "digits.onnx quantized with onnxruntime quantize_dynamic (QInt8 weights)",
    WEAK: "multinomial logistic regression on a 2×2-average-pooled (4×4) image",
}

Floats = npt.NDArray[np.float64]
Labels = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Split:
    """The fixed, stratified train/test split of load_digits."""

    x_train: Floats
    x_test: Floats
    y_train: Labels
    y_test: Labels


def load_split() -> Split:
    """load_digits split 70/30, stratified, seed 0."""
    x, y = load_digits(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=TEST_SIZE, stratify=y, random_state=SEED)
    return Split(x_tr, x_te, y_tr.astype(np.int64), y_te.astype(np.int64))


def train_mlp(split: Split) -> tuple[onnx.ModelProto, Floats]:
    """The main classifier, with its sklearn probabilities on the test rows (to check the export against)."""
    # adam converges in ~400 epochs here; the cap stays well above so no ConvergenceWarning is raised.
    mlp = MLPClassifier(hidden_layer_sizes=(64,), activation="relu", max_iter=1000, random_state=SEED)
    mlp.fit(split.x_train * INPUT_SCALE, split.y_train)
    layers = list(zip(mlp.coefs_, mlp.intercepts_, strict=True))
    model = onnx_graphs.dense_classifier(layers, input_scale=INPUT_SCALE, name=FP32)
    return model, mlp.predict_proba(split.x_test * INPUT_SCALE)


def pooling_matrix() -> Floats:
    """[64, 16] matrix that averages each 2×2 block of the 8×8 image: x @ P is the 4×4 thumbnail."""
    pool = np.zeros((64, 16))
    for r in range(8):
        for c in range(8):
            pool[r * 8 + c, (r // 2) * 4 + c // 2] = 0.25
    return pool


def train_weak(split: Split) -> onnx.ModelProto:
    """A weaker model with the same signature: it only sees a 4×4 thumbnail."""
    pool = pooling_matrix()
    lr = LogisticRegression(C=1.0, max_iter=5000)
    lr.fit(split.x_train @ pool * INPUT_SCALE, split.y_train)
    # Pooling is linear, so it folds into the weights and the graph keeps the 64-feature input.
    layer = (pool @ lr.coef_.T, lr.intercept_)
    return onnx_graphs.dense_classifier([layer], input_scale=INPUT_SCALE, name=WEAK)


def quantize(src: Path, dst: Path) -> None:
    """Dynamic int8 quantization of `src` into `dst` (weights QInt8, activations quantized per batch)."""
    root = logging.getLogger()
    level = root.level
    # quantize_dynamic advises shape pre-processing on the root logger; a two-MatMul graph gains nothing.
    root.setLevel(logging.ERROR)
    try:
        quantize_dynamic(src, dst, weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)


def probabilities(path: Path, x: Floats) -> npt.NDArray[np.float32]:
    """Run the ONNX model at `path` on `x` with onnxruntime."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = session.run([onnx_graphs.OUTPUT_NAME], {onnx_graphs.INPUT_NAME: x.astype(np.float32)})
    return np.asarray(out[0])


def is_up_to_date(out: Path) -> bool:
    """True when every output exists and is newer than the code that makes it."""
    paths = [out / name for name in OUTPUT_FILES]
    if not all(p.exists() for p in paths):
        return False
    return min(p.stat().st_mtime for p in paths) > max(s.stat().st_mtime for s in SOURCES)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _manifest(tmp: Path, split: Split, split_info: dict[str, Any]) -> dict[str, Any]:
    """Evaluate the written models with onnxruntime (what is served, not what sklearn thinks)."""
    proba = {n: probabilities(tmp / f"{n}.onnx", split.x_test) for n in MODEL_NAMES}
    top1 = {n: p.argmax(axis=1) for n, p in proba.items()}
    models = [
        {
            "name": name,
            "path": f"{name}.onnx",
            "description": DESCRIPTIONS[name],
            "accuracy": round(float(np.mean(top1[name] == split.y_test)), 4),
            "agreement_with_fp32": round(float(np.mean(top1[name] == top1[FP32])), 4),
            "max_abs_diff_vs_fp32": round(float(np.max(np.abs(proba[name] - proba[FP32]))), 6),
            "sha256": _sha256(tmp / f"{name}.onnx"),
        }
        for name in MODEL_NAMES
    ]
    return {
        "dataset": "sklearn.datasets.load_digits",
        "split": split_info,
        "input": {"name": onnx_graphs.INPUT_NAME, "datatype": "FP32", "shape": [-1, testset.FEATURES]},
        "output": {"name": onnx_graphs.OUTPUT_NAME, "datatype": "FP32", "shape": [-1, testset.CLASSES]},
        "test_set": TEST_SET_FILE,
        "models": models,
    }


def _write_all(tmp: Path, split: Split) -> dict[str, Any]:
    fp32, sk_proba = train_mlp(split)
    onnx.save(fp32, tmp / f"{FP32}.onnx")
    served = probabilities(tmp / f"{FP32}.onnx", split.x_test)
    if not np.allclose(served, sk_proba, atol=1e-4):
        raise RuntimeError("the exported digits.onnx disagrees with the trained MLP")
    quantize(tmp / f"{FP32}.onnx", tmp / f"{INT8}.onnx")
    onnx.save(train_weak(split), tmp / f"{WEAK}.onnx")
    split_info = {
        "test_size": TEST_SIZE,
        "stratified": True,
        "random_state": SEED,
        "train_rows": len(split.y_train),
        "test_rows": len(split.y_test),
    }
    rows = testset.TestSet(x=split.x_test.astype(int).tolist(), y=split.y_test.tolist())
    testset.write_test_set(tmp / TEST_SET_FILE, rows, split_info)
    manifest = _manifest(tmp, split, split_info)
    (tmp / MANIFEST_FILE).write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n")
    return manifest


def build(out: Path, *, force: bool = False) -> dict[str, Any]:
    """Make every output in `out` unless up to date; returns the manifest either way."""
    out.mkdir(parents=True, exist_ok=True)
    if not force and is_up_to_date(out):
        manifest: dict[str, Any] = orjson.loads((out / MANIFEST_FILE).read_bytes())
        return manifest
    # Built in a scratch directory and moved in with the manifest last, so an interrupted build never
    # leaves a set that looks complete.
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=out))
    try:
        manifest = _write_all(tmp, load_split())
        for name in OUTPUT_FILES:
            os.replace(tmp / name, out / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def format_table(manifest: dict[str, Any]) -> str:
    """The accuracies as a small text table."""
    lines = [f"{'model':<14} {'accuracy':>8} {'agree fp32':>10}"]
    for m in manifest["models"]:
        lines.append(f"{m['name']:<14} {m['accuracy']:>8.4f} {m['agreement_with_fp32']:>10.4f}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: build (or confirm) the models and print their held-out accuracies."""
    parser = argparse.ArgumentParser(prog="python -m modelserver.build_models", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("models"), help="output directory (default: models)")
    parser.add_argument("--force", action="store_true", help="rebuild even if the outputs are up to date")
    args = parser.parse_args(argv)
    fresh = args.force or not is_up_to_date(args.out)
    manifest = build(args.out, force=args.force)
    print(f"{'built' if fresh else 'up to date'}: {args.out}")
    print(format_table(manifest))
    return 0


if __name__ == "__main__":
    sys.exit(main())

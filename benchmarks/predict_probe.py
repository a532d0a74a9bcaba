"""How fast can the bench model's trees predict here? scikit-learn, tl2cgen's library and a branch-free evaluator.

Issue 26's targets need ml-batch's compiled path at 0.6x the scikit-learn floor; with a predict of zero
seconds ml-batch is already 0.563x (`bench.py --what-if-free-predict`). This probe measures, in one process on
the bench's model and rows, what the predict itself can cost, exact to scikit-learn's scores:

- **scikit-learn**: `HistGradientBoostingClassifier._raw_predict` (its OpenMP loop);
- **tl2cgen**: the library `ml_batch.model.compiled` builds at registration (tl2cgen's DMatrix included, as the
  scorer calls it);
- **branch-free**: `probes/branch_free.c`, compiled here with gcc: blocks of 64 rows walk each tree one level
  per step with conditional moves (no data-dependent branch, so no mispredictions), threads over row ranges.
  It is a probe, not a scoring path: HistGradientBoosting with numeric splits and one output per iteration
  (binary, regression) only.

Each runs on 1 and on 2 threads, in `--repeats` interleaved rounds; the table gives the best and the median
seconds, the speed against scikit-learn on as many threads, the nanoseconds per node visited per thread, and
the largest difference from scikit-learn's raw scores (tl2cgen: its probabilities against `predict_proba`).
It writes `results/predict_probe.json`. No timing is asserted anywhere; the tests check the evaluator's
scores only.

Usage: `.venv/bin/python benchmarks/predict_probe.py [--rows 1000000] [--repeats 3]`.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # its sibling module, also when imported by path
import bench

KERNEL_SOURCE = Path(__file__).resolve().parent / "probes" / "branch_free.c"
CFLAGS = ("-O3", "-march=native", "-fPIC", "-shared")
THREADS = (1, 2)
# numpy's record of one node, as `probes/branch_free.c` declares `node_t` (24 bytes, no padding)
NODE_DTYPE = np.dtype([("threshold", "<f8"), ("feature", "<i4"), ("left", "<i4"), ("right", "<i4"),
                       ("missing_left", "<i4")])


@dataclass(frozen=True)
class NodeTable:
    """A HistGradientBoosting model's trees as `branch_free.c` reads them: one node array for all trees."""

    nodes: np.ndarray  # NODE_DTYPE; a leaf's left and right are itself
    values: np.ndarray  # float64, the leaf values (0 for split nodes)
    roots: np.ndarray  # int32, each tree's first node
    depths: np.ndarray  # int32, each tree's deepest leaf: the steps its walk takes
    baseline: float
    path_length: float  # node visits per row, the trees' leaf depths weighted by their training rows


def node_table(estimator: Any) -> NodeTable:
    """The fitted HistGradientBoosting `estimator`'s trees as a `NodeTable`.

    Raises:
        ValueError: not a fitted HistGradientBoosting model, more than one output per iteration (multiclass),
            or a categorical split (the evaluator compares numbers only).
    """
    predictors = getattr(estimator, "_predictors", None)
    if predictors is None:
        raise ValueError(f"{type(estimator).__name__} is not a fitted HistGradientBoosting model: the probe "
                         "evaluates HistGradientBoosting{Classifier,Regressor} only")
    if estimator.n_trees_per_iteration_ != 1:
        raise ValueError(f"{type(estimator).__name__} has {estimator.n_trees_per_iteration_} trees per iteration "
                         "(multiclass): the probe evaluates one output per iteration (binary, regression)")
    parts, values, roots, depths, path = [], [], [], [], 0.0
    first = 0
    for index, (tree,) in enumerate(predictors):
        raw = tree.nodes
        if raw["is_categorical"].any():
            raise ValueError(f"tree {index} has a categorical split: the probe compares numbers only")
        own = first + np.arange(len(raw), dtype=np.int32)
        leaf = raw["is_leaf"].astype(bool)
        part = np.zeros(len(raw), dtype=NODE_DTYPE)
        part["threshold"] = np.where(leaf, 0.0, raw["num_threshold"])
        part["feature"] = np.where(leaf, 0, raw["feature_idx"])
        part["left"] = np.where(leaf, own, first + raw["left"].astype(np.int64))
        part["right"] = np.where(leaf, own, first + raw["right"].astype(np.int64))
        part["missing_left"] = np.where(leaf, 0, raw["missing_go_to_left"])
        parts.append(part)
        values.append(np.where(leaf, raw["value"], 0.0))
        roots.append(first)
        depths.append(int(raw["depth"].max()))
        path += float(np.average(raw["depth"][leaf], weights=raw["count"][leaf]))
        first += len(raw)
    return NodeTable(np.concatenate(parts), np.concatenate(values).astype(np.float64),
                     np.asarray(roots, dtype=np.int32), np.asarray(depths, dtype=np.int32),
                     float(np.ravel(estimator._baseline_prediction)[0]), path)


class BranchFree:
    """`probes/branch_free.c` compiled into `folder` and loaded; `raw` scores rows with it."""

    def __init__(self, folder: Path) -> None:
        if shutil.which("gcc") is None:
            raise RuntimeError("gcc is not on PATH: the branch-free evaluator cannot be built")
        library = folder / "branch_free.so"
        subprocess.run(["gcc", *CFLAGS, "-o", str(library), str(KERNEL_SOURCE)], check=True)
        self._lib = ctypes.CDLL(str(library))  # a ctypes call releases the GIL: threads run in parallel
        pointer = ctypes.c_void_p
        self._lib.raw_predict.argtypes = [pointer, pointer, pointer, pointer, ctypes.c_int32, ctypes.c_double,
                                          pointer, ctypes.c_int32, ctypes.c_int64, pointer]
        self._lib.raw_predict.restype = None

    def raw(self, table: NodeTable, x: np.ndarray, *, threads: int = 1) -> np.ndarray:
        """The raw scores (scikit-learn's `_raw_predict`, one column) of the float64 rows `x`."""
        x = np.ascontiguousarray(x, dtype=np.float64)
        if x.ndim != 2:
            raise ValueError(f"rows of shape {x.shape}: expected a 2-d array (rows x features)")
        out = np.empty(len(x), dtype=np.float64)
        bounds = np.linspace(0, len(x), threads + 1).astype(np.int64)

        def part(begin: int, end: int) -> None:
            self._lib.raw_predict(table.nodes.ctypes.data, table.values.ctypes.data, table.roots.ctypes.data,
                                  table.depths.ctypes.data, len(table.roots), table.baseline,
                                  x[begin:].ctypes.data, x.shape[1], end - begin, out[begin:].ctypes.data)

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(part, bounds[:-1], bounds[1:]))
        return out


def _sklearn_raw(estimator: Any, x: np.ndarray, threads: int) -> np.ndarray:
    from threadpoolctl import threadpool_limits

    with threadpool_limits(threads):
        return np.asarray(estimator._raw_predict(x), dtype=np.float64)[:, 0]


def _model(args: argparse.Namespace) -> tuple[Any, Any, np.ndarray, np.ndarray]:
    """The bench's spec and model (fitted on `--train-rows` as bench.py fits it), and the day's feature matrix."""
    from ml_batch.features import build_pipeline, feature_frame

    spec = bench.bench_spec("bench")
    table, y = bench.make_rows(args.train_rows, bench.TRAIN_DAY, 0, bench.SEED)
    frame = table.select(bench.FEATURES).to_pandas()
    cut = int(len(frame) * (1 - bench.HOLDOUT_SHARE))
    pipeline = build_pipeline(spec).fit(frame.iloc[:cut], y[:cut])
    holdout = frame.iloc[cut:]
    day = bench.make_rows(args.rows, bench.DAY, args.train_rows, bench.SEED + 1)[0].select(bench.FEATURES)
    x = np.asarray(pipeline[:-1].transform(feature_frame(day.to_pandas(), spec)), dtype=np.float64)
    return spec, pipeline, holdout, x


def run(args: argparse.Namespace) -> dict[str, Any]:
    import tl2cgen

    from ml_batch.model import compiled
    from ml_batch.model.training import predict_scores

    spec, pipeline, holdout, x = _model(args)
    estimator = pipeline[-1]
    table = node_table(estimator)
    truth_raw = _sklearn_raw(estimator, x, max(THREADS))
    truth_proba = estimator.predict_proba(x)[:, 1]
    with tempfile.TemporaryDirectory(prefix="ml-batch-probe-") as folder:
        built = compiled.compile_pipeline(pipeline, spec, holdout, predict_scores(pipeline, holdout, spec),
                                          nthread=max(THREADS))
        if built.library is None:
            raise RuntimeError(f"the compiled path cannot be probed here: {built.record['reason']}")
        library = Path(folder) / "model.so"
        library.write_bytes(built.library)
        kernel = BranchFree(Path(folder))
        predictors = {threads: tl2cgen.Predictor(str(library), nthread=threads) for threads in THREADS}
        variants = {
            "scikit-learn": lambda threads: _sklearn_raw(estimator, x, threads),
            "tl2cgen": lambda threads: np.asarray(predictors[threads].predict(
                tl2cgen.DMatrix(x, dtype="float64")), dtype=np.float64).reshape(len(x)),
            "branch-free": lambda threads: kernel.raw(table, x, threads=threads),
        }
        seconds: dict[str, dict[int, list[float]]] = {name: {t: [] for t in THREADS} for name in variants}
        diffs: dict[str, float] = {}
        for _ in range(args.repeats):
            for name, predict in variants.items():
                for threads in THREADS:
                    started = time.perf_counter()
                    got = predict(threads)
                    seconds[name][threads].append(time.perf_counter() - started)
                    truth = truth_proba if name == "tl2cgen" else truth_raw
                    diffs[name] = max(diffs.get(name, 0.0), float(np.max(np.abs(got - truth))))
    visits = len(x) * table.path_length
    results: dict[str, Any] = {
        "rows": len(x), "repeats": args.repeats,
        "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores",
        "model": {"estimator": type(estimator).__name__, "trees": len(table.roots), "nodes": len(table.nodes),
                  "path_length": round(table.path_length, 2), "steps_per_row": int(table.depths.sum()),
                  "compile_s": built.record["compile_seconds"]},
        "cflags": list(CFLAGS), "variants": {},
    }
    for name in variants:
        for threads in THREADS:
            runs = seconds[name][threads]
            best = min(runs)
            results["variants"][f"{name}/{threads}"] = {
                "best_s": round(best, 3), "median_s": round(statistics.median(runs), 3),
                "speedup": round(min(seconds["scikit-learn"][threads]) / best, 2),
                "ns_per_visit_per_thread": round(best * threads / visits * 1e9, 2),
                "max_abs_diff": diffs[name], "all_s": [round(s, 3) for s in runs]}
    return results


def format_report(results: dict[str, Any]) -> str:
    model = results["model"]
    lines = [f"{results['rows']:,} rows, {results['repeats']} interleaved rounds, {results['machine']}; "
             f"{model['estimator']}: {model['trees']} trees, {model['nodes']:,} nodes, {model['path_length']} "
             f"node visits per row ({model['steps_per_row']} branch-free steps), "
             f"tl2cgen compile {model['compile_s']} s",
             f"{'predict':<16} {'threads':>7} {'best s':>8} {'median s':>9} {'vs sklearn':>10} "
             f"{'ns/visit/thread':>15} {'max abs diff':>12}"]
    for key, found in results["variants"].items():
        name, threads = key.rsplit("/", 1)
        lines.append(f"{name:<16} {threads:>7} {found['best_s']:>8.3f} {found['median_s']:>9.3f} "
                     f"{found['speedup']:>9.2f}x {found['ns_per_visit_per_thread']:>15.2f} "
                     f"{found['max_abs_diff']:>12.3g}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--train-rows", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=bench.RESULTS_DIR / "predict_probe.json")
    args = parser.parse_args(argv)
    results = run(args)
    print(format_report(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

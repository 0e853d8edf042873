"""The garbage collector set for a server that allocates per request and keeps little: once, when it listens.

Usage: tune_gc()  (proxy.runtime.server, after start-up and before traffic)

CPython's collector runs when the tracked objects allocated minus those freed since its last run pass a
threshold (700 by default). Under load that count grows all the time: requests in flight, the records the
controller reads back and folds. So a young-generation run came every ~50 requests here, each tenth of them
an older one, and a full run walks the whole heap (start-up's modules, numpy, scipy, onnx: some 10^5
objects). About 9% of the process' CPU per request under a saturating load went to that
(`python -m loadtests.bench_ab` before vs after, docs/benchmarks.md). So:
- `gc.freeze()` after start-up: what start-up built lives as long as the process; it moves to the permanent
  generation, which no run walks.
- a young generation of `YOUNG` net allocations. Request objects are freed by reference counting, not by
  the collector, which only finds cycles (exceptions with their tracebacks, futures with callbacks); those
  wait a little longer, so memory stays bounded by the threshold's worth of young objects.
The runs per generation are on /metrics (`python_gc_collections_total`), tested under load in
tests/integration/test_fastpath.py.
"""

from __future__ import annotations

import gc

YOUNG = 20_000
"""Allocations (minus frees) between young-generation collections (CPython's default: 700)."""
OLDER = 20
"""Collections of one generation before the next older one is collected too (default: 10)."""


def tune_gc() -> None:
    """Collect what start-up left, freeze the survivors, raise the thresholds."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG, OLDER, OLDER)

"""Candidate fixes for hot spots, applied to a benchmark server only
(bench/qc_server.py, QC_BENCH_WHATIF=name,name): a way to measure a suggestion
side by side with qc_live as it is (`bench/load.py latency --whatif ";name"`)
before anyone edits qc_live/. A candidate is a function `(app) -> None` that
monkey-patches qc_live after create_app (CANDIDATES), or `() -> None` run
before it (BEFORE_APP, e.g. for engine options). Prototypes, not fixes: each
must keep qc_live's rules and is only as tested as the benchmarks make it.

There are none at the moment. The first round (measured in docs/benchmarks.md,
"Candidate fixes") is now part of qc_live, rewritten and tested there:
sockets_local and ack_batch (notify._reviewer_sockets, notify.AckRecorder),
core_complete (dispatch.complete and _claim_for as Core statements),
dispatch_bulk (dispatch.dispatch_pending in set-based batches), pool_keep
(QC_DB_POOL_SIZE / QC_DB_MAX_OVERFLOW), and bench/nodelay.py's TCP_NODELAY
(qc_live/listener.py). Their prototypes are in this file's history
(git log -p bench/whatif.py).
"""
import logging

log = logging.getLogger("qc_bench.whatif")

BEFORE_APP = {}
CANDIDATES = {}


def before_app(names) -> None:
    for name in names:
        if name in BEFORE_APP:
            BEFORE_APP[name]()


def apply(app, names) -> None:
    for name in names:
        if name in BEFORE_APP:
            log.warning("what-if applied: %s", name)
            continue
        if name not in CANDIDATES:
            known = ", ".join([*CANDIDATES, *BEFORE_APP]) or "none at the moment"
            raise SystemExit(f"QC_BENCH_WHATIF: unknown candidate {name!r} (known: {known})")
        CANDIDATES[name](app)
        log.warning("what-if applied: %s", name)

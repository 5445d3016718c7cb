"""The board's per-reviewer audit figures at 100,000 tasks: one command, not a test.

    .venv/bin/python bench/board_quality.py                      # SQLite
    .venv/bin/python bench/board_quality.py mysql+pymysql://root@127.0.0.1:3306/qc_bench 100000

bench/list_tasks.py's fill (100 reviewers, 80% completed), then 5% of the
completed tasks made gold and 10% of the rest audited (nine in ten agreed,
finalised). Prints median times of the board snapshot's parts
(stats.reviewer_stats, audits.reviewer_figures without trend, open_disputes),
of the whole snapshot and of GET /stats/reviewers' figures, and the plans of
the grouped reads. Figures: docs/benchmarks.md "Reviewer quality figures".
"""
import sys, time, tempfile, statistics, random
sys.path.insert(0, "/work/wt-attack17"); sys.path.insert(0, "/work/wt-attack17/bench")
import sqlalchemy as sa
import list_tasks as lt
from qc_live.extensions import db
from qc_live import audits, board, stats
from qc_live.models import Task

url = sys.argv[1] if len(sys.argv) > 1 else None
rows = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
inst = tempfile.mkdtemp()
if url is None:
    url = f"sqlite:///{inst}/b.db"
else:
    lt.prepare_mysql(url, True)
app = lt.make_app(url, inst)
with app.app_context():
    lt.fill(rows)
    s = db.session
    rng = random.Random(3)
    ids = list(s.scalars(sa.select(Task.id).where(Task.status == "completed")))
    gold = rng.sample(ids, len(ids) // 20)
    s.execute(sa.update(Task).where(Task.id.in_(gold)).values(expected_outcome="pass"))
    rest = list(set(ids) - set(gold))
    aud = rng.sample(rest, len(rest) // 10)
    s.execute(sa.update(Task).where(Task.id.in_(aud[: len(aud) * 9 // 10])).values(audit="agreed", finalized_at=sa.func.now()))
    s.execute(sa.update(Task).where(Task.id.in_(aud[len(aud) * 9 // 10:])).values(audit="disputed"))
    s.commit()
    s.execute(sa.text("ANALYZE" if url.startswith("sqlite") else "ANALYZE TABLE tasks"))
    s.commit()
    cfg = app.extensions["qc_config"]
    def t(label, fn, n=10):
        fn(); xs = []
        for _ in range(n):
            a = time.perf_counter(); fn(); xs.append(time.perf_counter() - a)
        print(f"{label:40s} median {statistics.median(xs)*1000:8.1f} ms", flush=True)
    t("reviewer_stats (pre-existing)", lambda: stats.reviewer_stats(s))
    t("reviewer_figures(trend=False) (new)", lambda: audits.reviewer_figures(s, trend=False))
    t("open_disputes (new)", lambda: audits.open_disputes(s))
    t("whole snapshot", lambda: board.snapshot(s, cfg))
    t("reviewer_figures(trend=True) /stats/reviewers", lambda: audits.reviewer_figures(s), 5)
    for label, q in [("audits grouped", sa.select(audits._BY_ASSIGNEE, Task.audit, Task.finalized_at.is_(None), sa.func.count()).where(Task.audit.in_(("agreed","disputed"))).group_by(audits._BY_ASSIGNEE, Task.audit, Task.finalized_at.is_(None)).with_hint(*audits._index("ix_tasks_audit_assignee", "mysql"))),
                     ("gold grouped", sa.select(audits._BY_ASSIGNEE, sa.func.count(), sa.func.sum(sa.case((Task.outcome == Task.expected_outcome, 1), else_=0))).where(Task.expected_outcome.in_(("pass","fail")), Task.outcome.is_not(None)).group_by(audits._BY_ASSIGNEE).with_hint(*audits._index("ix_tasks_gold_assignee", "mysql"))),
                     ("completed per assignee", sa.select(Task.assignee_id, sa.func.count()).where(Task.status == "completed").group_by(Task.assignee_id))]:
        c = q.compile(s.get_bind(), compile_kwargs={"literal_binds": True})
        pre = "EXPLAIN QUERY PLAN " if url.startswith("sqlite") else "EXPLAIN "
        print(label, [tuple(r) for r in s.execute(sa.text(pre + str(c)))])
        t("  " + label, lambda: s.execute(q).all())
    s.rollback()

#!/usr/bin/env python3
"""Before/after: `bench/load.py latency` on an older commit and on this tree, in
alternating runs on the same machine (before, after, before, after, ...), each run
against its own echo baseline.

    .venv/bin/python bench/compare.py                      # 2206c89 vs this tree, 3 runs each
    .venv/bin/python bench/compare.py --before REV --runs 5 --modes gevent,eventlet

The older commit is exported with `git archive` into a temporary folder and served
from there (`load.py --qc-root`) with this tree's .venv; the load client and the
echo server are this tree's in every run, so only qc_live differs. Per run and
database it reads the two figures the issue's targets are about, as ratios to echo
(load.py's definitions): p50 complete -> next task at the lowest reviewer level
÷ echo's p50, and completions/s at the highest level ÷ echo's rate; also the
server's CPU ms per completion. It prints each run, the medians per side and
after ÷ before of the medians (p50: < 1 is better; rate: > 1 is better), and keeps
every run's JSON under bench/results/compare-<time>/.

The machine is shared: a single run can land on a busy minute, which is why the
sides alternate and the medians are compared.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def log(*parts) -> None:
    print(time.strftime("%H:%M:%S"), *parts, file=sys.stderr, flush=True)


def export(rev: str, into: Path) -> str:
    """The tree of `rev` under `into`; returns the full commit id."""
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--verify", rev + "^{commit}"],
                            check=True, capture_output=True, text=True).stdout.strip()
    archive = subprocess.Popen(["git", "-C", str(ROOT), "archive", commit],
                               stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(into)], stdin=archive.stdout, check=True)
    if archive.wait() != 0:
        raise RuntimeError(f"git archive {rev} failed")
    return commit


def figures(result: dict) -> list[dict]:
    """One row per (mode, database) of a load.py latency result."""
    rows = []
    for run in result["runs"]:
        phases = run["phases"]
        echo = {p["reviewers"]: p for p in phases if p["server"] == "echo"}
        low, high = min(echo), max(echo)
        for p in phases:
            if p["server"] == "echo" or p["reviewers"] not in (low, high):
                continue
            key = (run["mode"], p["server"])
            row = next((r for r in rows if r["key"] == key), None)
            if row is None:
                row = {"key": key, "mode": run["mode"], "server": p["server"]}
                rows.append(row)
            base = echo[p["reviewers"]]
            if p["reviewers"] == low:
                row["p50_ms"] = p["p50_ms"]
                row["p50_ratio"] = round(p["p50_ms"] / base["p50_ms"], 3)
                row["cpu_low"] = p.get("server_cpu_ms_per_completion")
            if p["reviewers"] == high:
                row["rate"] = p["rate"]
                row["rate_ratio"] = round(p["rate"] / base["rate"], 4)
                row["cpu_high"] = p.get("server_cpu_ms_per_completion")
                row["errors"] = p["errors"]
            row["load"] = p["load"].split(" -> ")[-1].split()[0]
    return rows


def median(values):
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 4) if values else None


def report(runs: list[dict], low: int, high: int, before: str) -> str:
    keys = []
    for run in runs:
        for row in run["rows"]:
            if row["key"] not in keys:
                keys.append(row["key"])
    out = []
    header = (f"| run | side | started | p50 ms, {low} rev. | p50 ÷ echo | rate/s, {high} rev. "
              f"| rate ÷ echo | CPU ms/compl. {low} / {high} | errors | load |\n"
              "|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    summary = ["| mode | database | p50 ÷ echo before | after | after ÷ before "
               "| rate ÷ echo before | after | after ÷ before | CPU ms/compl. before | after |",
               "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for key in keys:
        lines = [f"#### {key[0]}, {key[1]}", "", header]
        per_side = {"before": [], "after": []}
        for run in runs:
            row = next((r for r in run["rows"] if r["key"] == key), None)
            if row is None:
                continue
            per_side[run["side"]].append(row)
            lines.append(f"| {run['index']} | {run['side']} | {run['started']} | {row.get('p50_ms')} "
                         f"| {row.get('p50_ratio')} | {row.get('rate')} | {row.get('rate_ratio')} "
                         f"| {row.get('cpu_low')} / {row.get('cpu_high')} | {row.get('errors')} "
                         f"| {row.get('load')} |")
        out.append("\n".join(lines))
        med = {side: {f: median([r.get(f) for r in rows])
                      for f in ("p50_ratio", "rate_ratio", "cpu_low", "cpu_high")}
               for side, rows in per_side.items()}

        def change(field):
            b, a = med["before"][field], med["after"][field]
            return None if not b or a is None else round(a / b, 3)
        summary.append(
            f"| {key[0]} | {key[1]} | {med['before']['p50_ratio']} | {med['after']['p50_ratio']} "
            f"| **{change('p50_ratio')}** | {med['before']['rate_ratio']} "
            f"| {med['after']['rate_ratio']} | **{change('rate_ratio')}** "
            f"| {med['before']['cpu_low']} / {med['before']['cpu_high']} "
            f"| {med['after']['cpu_low']} / {med['after']['cpu_high']} |")
    out.append(f"#### Medians (before = {before[:9]}, after = this tree)\n\n"
               + "\n".join(summary))
    return "\n\n".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", default="2206c89",
                        help="the commit to compare with (default: 2206c89, the release "
                             "before issue 13's renovation)")
    parser.add_argument("--runs", type=int, default=3, help="runs per side (default: 3)")
    parser.add_argument("--modes", default="gevent", help="async modes (default: gevent)")
    parser.add_argument("--dbs", default="sqlite,mysql")
    parser.add_argument("--reviewers", default="1,200",
                        help="levels; p50 is read at the lowest, the rate at the highest")
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--warmup", type=float, default=2)
    args = parser.parse_args(argv)
    levels = [int(x) for x in args.reviewers.split(",")]
    folder = RESULTS / f"compare-{time.strftime('%Y%m%d-%H%M%S')}"
    folder.mkdir(parents=True)
    runs = []
    with tempfile.TemporaryDirectory(prefix="qc_before_") as tree:
        commit = export(args.before, Path(tree))
        log(f"before: {commit[:9]} in {tree}; after: {ROOT}")
        for index in range(1, args.runs + 1):
            for side in ("before", "after"):
                target = folder / f"{index}-{side}.json"
                cmd = [sys.executable, str(ROOT / "bench" / "load.py"), "latency",
                       "--modes", args.modes, "--dbs", args.dbs, "--reviewers", args.reviewers,
                       "--seconds", str(args.seconds), "--warmup", str(args.warmup),
                       "--json", str(target)]
                if side == "before":
                    cmd += ["--qc-root", tree]
                log(f"run {index} {side}: load average {os.getloadavg()[0]:.2f}")
                done = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL)
                if done.returncode != 0 or not target.exists():
                    log(f"run {index} {side} failed (exit {done.returncode}); skipped")
                    continue
                result = json.loads(target.read_text())
                runs.append({"index": index, "side": side, "started": result["started"][11:16],
                             "rows": figures(result)})
    text = report(runs, min(levels), max(levels), commit)
    (folder / "report.md").write_text(text + "\n")
    (folder / "runs.json").write_text(json.dumps(
        {"before": commit, "args": vars(args),
         "runs": [{**r, "rows": [{**row, "key": list(row["key"])} for row in r["rows"]]}
                  for r in runs]}, indent=1))
    print(text)
    print(f"\n(runs: {folder})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

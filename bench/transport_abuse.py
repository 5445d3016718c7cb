#!/usr/bin/env python3
"""One anonymous client against the transport, per async mode: what it costs
everyone else. Results go in docs/deploy.md ("Async mode").

For each mode and attack, a fresh `python run.py` (SQLite) with one reviewer
completing tasks back to back (complete -> next, ~6 a second) and a probe
calling GET /healthz every 0.1 s, while one client:

  frames     sends 990 KB WebSocket frames in a loop (no token, no namespace)
  fragments  sends messages of 220 continuation frames of 900 KB each
  malformed  sends tiny malformed packets (`4x`) in batches of 5,000
  slowloris  opens --connections half-open HTTP connections (part of a header)

and reports the slowest /healthz answer and reviewer cycle during the attack,
the server's memory (VmRSS) before, at its peak and after, and the bytes its
log grew by.

    .venv/bin/python bench/transport_abuse.py                        # all modes and attacks
    .venv/bin/python bench/transport_abuse.py --modes eventlet --attacks frames --seconds 15
    .venv/bin/python bench/transport_abuse.py --attacks slowloris --connections 10100
"""
import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import attacks  # noqa: E402
from live import Database, Server  # noqa: E402

ATTACKS = ("frames", "fragments", "malformed", "slowloris")


def run_one(mode: str, attack: str, args, env: dict) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="qc-abuse-"))
    database = Database(tmp)
    server = Server(database, tmp, QC_ASYNC_MODE=mode, **env)
    try:
        server.start()
        alice = server.reviewer("alice")
        server.add_tasks([{"name": f"t{i}"} for i in range(int(args.seconds * 10) + 200)])
        worker = attacks.Worker(server, alice["token"], timeout=120)
        worker.start()
        time.sleep(1.5)
        pid = server.process.pid
        rss_before = attacks.rss_kib(pid)
        log_before = server.log_path.stat().st_size
        memory = attacks.PeakMemory(pid)
        memory.start()
        probe = attacks.Probe(server.url, timeout=120)
        probe.start()
        result = {"mode": mode, "attack": attack}
        started = time.monotonic()
        if attack == "slowloris":
            held = attacks.half_open(server.port, args.connections)
            result["opened"] = len(held)
            result["open_seconds"] = round(time.monotonic() - started, 1)
            login_started = time.monotonic()
            try:
                server.request("POST", "/login", json={"username": "alice",
                                                       "password": "reviewer-pass-1"})
                result["login_s"] = round(time.monotonic() - login_started, 2)
            except Exception as exc:  # noqa: BLE001 - reported
                result["login_s"] = repr(exc)
            deadline = started + args.seconds
            while time.monotonic() < deadline:
                time.sleep(0.5)
            result["closed_by_server"] = sum(attacks.closed_by_server(s) for s in held)
            for sock in held:
                sock.close()
        else:
            step = {"frames": attacks.big_frames(), "fragments": attacks.fragmented_message(),
                    "malformed": attacks.malformed_packets()}[attack]
            attacker = attacks.Attack(server.url, step)
            attacker.start()
            time.sleep(args.seconds)
            attacker.stop()
            result["attack_steps"], result["dropped"] = attacker.sent, attacker.dropped
        attack_seconds = time.monotonic() - started
        probe.stop()
        time.sleep(3)
        try:
            worker.stop()
        except Exception as exc:  # noqa: BLE001 - reported
            result["reviewer_error"] = repr(exc)
        memory.stop()
        result.update(
            seconds=round(attack_seconds, 1),
            healthz_slowest_s=round(probe.slowest, 3), healthz_failures=len(probe.failures),
            reviewer_cycles=len(worker.cycles), reviewer_slowest_s=round(worker.slowest, 3),
            rss_before_mb=round(rss_before / 1024, 1), rss_peak_mb=round(memory.peak / 1024, 1),
            rss_after_mb=round(attacks.rss_kib(pid) / 1024, 1),
            log_growth_kb=round((server.log_path.stat().st_size - log_before) / 1024, 1))
        return result
    finally:
        server.stop()
        database.drop()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"  kept {tmp}", file=sys.stderr)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--modes", default="eventlet,gevent,threading")
    parser.add_argument("--attacks", default=",".join(ATTACKS))
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--env", action="append", default=[],
                        help="NAME=VALUE for the server (repeatable)")
    parser.add_argument("--keep", action="store_true", help="keep the servers' logs")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    env = dict(item.split("=", 1) for item in args.env)
    results = []
    for mode in args.modes.split(","):
        for attack in args.attacks.split(","):
            print(f"{mode} / {attack} ...", file=sys.stderr, flush=True)
            result = run_one(mode, attack, args, env)
            print(json.dumps(result), flush=True)
            results.append(result)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Run qc_live as a small cluster on this machine: N `run.py` processes behind
nginx, sharing MariaDB and a Redis message queue, all on loopback.

    python scripts/cluster.py --processes 3 --port 8080     (or: make cluster N=3)

Ctrl-C (or SIGTERM) stops everything. Defaults: MariaDB at 127.0.0.1:3306 as
root, database `qc_live_cluster` (created if missing), Redis at 127.0.0.1:6379.
Processes listen on port+1 ... port+N; nginx on `port`. Logs and the rendered
nginx.conf go to instance/cluster/.
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "deploy" / "nginx.conf.template"


def render_nginx(run_dir: Path, listen: str, ports: list[int]) -> Path:
    servers = "\n".join(f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=5s;"
                        for p in ports)
    text = TEMPLATE.read_text().replace("{run_dir}", str(run_dir)) \
        .replace("{servers}", servers).replace("{listen}", listen)
    conf = run_dir / "nginx.conf"
    conf.write_text(text)
    return conf


def create_database(url: str) -> None:
    if not url.startswith("mysql"):
        return
    import pymysql
    from sqlalchemy.engine import make_url
    parts = make_url(url)
    with pymysql.connect(host=parts.host or "127.0.0.1", port=parts.port or 3306,
                         user=parts.username or "root", password=parts.password or "") as conn:
        conn.cursor().execute(f"CREATE DATABASE IF NOT EXISTS `{parts.database}` "
                              "CHARACTER SET utf8mb4")


def wait_healthy(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"cluster: {url} did not become healthy")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", "-n", type=int, default=2)
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--database-url",
                        default="mysql+pymysql://root@127.0.0.1:3306/qc_live_cluster")
    parser.add_argument("--message-queue", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--run-dir", default=str(ROOT / "instance" / "cluster"))
    args = parser.parse_args(argv)
    if args.processes < 1:
        parser.error("--processes must be at least 1")
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        raise SystemExit("cluster: nginx is not installed (apt-get install -y nginx-light)")

    run_dir = Path(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    create_database(args.database_url)
    ports = [args.port + i + 1 for i in range(args.processes)]
    children = []

    def stop(*_):
        for child in reversed(children):
            if child.poll() is None:
                child.terminate()
        for child in children:
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                child.kill()
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    env = {**os.environ, "DATABASE_URL": args.database_url,
           "QC_MESSAGE_QUEUE": args.message_queue, "HOST": "127.0.0.1",
           "QC_PROXY_HOPS": "1"}
    try:
        for i, port in enumerate(ports):
            log = open(run_dir / f"qc_live-{port}.log", "ab")
            children.append(subprocess.Popen([sys.executable, str(ROOT / "run.py")], cwd=ROOT,
                                             env={**env, "PORT": str(port)},
                                             stdout=log, stderr=subprocess.STDOUT))
            # The first process creates the schema; the others start after it.
            if i == 0:
                wait_healthy(f"http://127.0.0.1:{port}")
        for port in ports:
            wait_healthy(f"http://127.0.0.1:{port}")
        conf = render_nginx(run_dir, f"127.0.0.1:{args.port}", ports)
        children.append(subprocess.Popen([nginx, "-c", str(conf), "-g", "daemon off;"],
                                         stderr=subprocess.STDOUT,
                                         stdout=open(run_dir / "nginx.log", "ab")))
        wait_healthy(f"http://127.0.0.1:{args.port}")
        print(f"qc_live cluster: http://127.0.0.1:{args.port} -> {len(ports)} processes "
              f"(ports {ports[0]}-{ports[-1]}), logs in {run_dir}", flush=True)
        while True:
            for child in children:
                if child.poll() is not None:
                    print(f"cluster: {child.args[0]} (pid {child.pid}) exited with "
                          f"{child.returncode}", flush=True)
                    children.remove(child)
                    break
            time.sleep(0.5)
    finally:
        if any(c.poll() is None for c in children):
            stop()


if __name__ == "__main__":
    sys.exit(main())

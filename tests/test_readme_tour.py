"""The README's two-minute tour, run as written against a live server, so it
cannot rot: its shell blocks in one bash session (as a newcomer pastes them),
its Python reviewer with nothing but what `make run` installs plus the install
command the tour itself gives. And every link in README.md and docs/ resolves
inside the repository."""
import importlib.metadata
import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from live import ROOT

README = ROOT / "README.md"
# What differs between the tour (`make run`'s defaults) and the test's server.
TOUR_URL = "http://127.0.0.1:5000"
TOUR_ADMIN_FILE = "first-run-admin-qc_live.txt"

# Run by the tour's Python with the README's snippet: a module of a package
# that `make run` + the tour's install command would not have installed is
# "not installed", as in a fresh clone's .venv.
ONLY_INSTALLED = '''
import importlib.abc, importlib.metadata, json, os, re, runpy, sys
allowed = set(json.loads(os.environ["QC_TOUR_DISTRIBUTIONS"]))
owners = importlib.metadata.packages_distributions()

class OnlyInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        dists = owners.get(name.partition(".")[0])
        if dists and not any(re.sub(r"[-_.]+", "-", d).lower() in allowed for d in dists):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, OnlyInstalled())
runpy.run_path(sys.argv[1], run_name="__main__")
'''


def tour() -> str:
    text = README.read_text()
    start = text.index("## A two-minute tour")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def requirement_lines(path: Path):
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            yield from requirement_lines(path.parent / line[3:].strip())
        elif line:
            yield Requirement(line)


def installed_by(*files: Path) -> set[str]:
    """The distributions these requirement files install, dependencies included."""
    todo = [req for path in files for req in requirement_lines(path)]
    seen, names = set(), set()
    while todo:
        req = todo.pop()
        key = (canonicalize_name(req.name), frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        names.add(key[0])
        try:
            dependencies = importlib.metadata.requires(req.name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for dependency in map(Requirement, dependencies):
            extras = [""] + sorted(req.extras)
            if dependency.marker is None or any(dependency.marker.evaluate({"extra": extra})
                                                for extra in extras):
                todo.append(dependency)
    return names


class Shell:
    """One bash session: blocks are pasted into it one after the other."""

    def __init__(self, cwd: Path):
        self.process = subprocess.Popen(["bash"], cwd=cwd, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True, bufsize=1)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.process.stdout:
            self.lines.put(line)

    def paste(self, block: str, timeout: float = 60) -> str:
        marker = f"__tour_{time.monotonic_ns()}__"
        self.process.stdin.write(block + f"\necho {marker}\n")
        self.process.stdin.flush()
        out, deadline = [], time.monotonic() + timeout
        while True:
            line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            if line.rstrip("\n").endswith(marker):
                out.append(line.rstrip("\n")[:-len(marker)])
                return "".join(out)
            out.append(line)

    def close(self):
        self.process.stdin.close()
        self.process.wait(10)


def run_reviewer(snippet: str, distributions: set[str], tmp_path: Path, until,
                 timeout: float = 60) -> str:
    """Run the tour's Python reviewer until `until(output)` holds; its output.

    The script prints from two threads (events and acks): an ack may come after
    the push that follows it, and a line's newline after another line, so
    `until` looks at the whole output, not at one line."""
    (tmp_path / "reviewer.py").write_text(snippet)
    (tmp_path / "only_installed.py").write_text(ONLY_INSTALLED)
    env = {**os.environ, "QC_TOUR_DISTRIBUTIONS": json.dumps(sorted(distributions))}
    process = subprocess.Popen([sys.executable, "-u", str(tmp_path / "only_installed.py"),
                                str(tmp_path / "reviewer.py")], cwd=tmp_path, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in process.stdout] and None,
                     daemon=True).start()
    seen, deadline = [], time.monotonic() + timeout
    try:
        while not until("".join(seen)):
            if time.monotonic() > deadline:
                raise AssertionError("the tour's reviewer never printed all it should:\n"
                                     + "".join(seen))
            try:
                seen.append(lines.get(timeout=0.2))
            except queue.Empty:
                if process.poll() is not None and lines.empty():
                    raise AssertionError("the tour's reviewer stopped:\n" + "".join(seen)) \
                        from None
    finally:
        process.terminate()  # the snippet waits forever, like the newcomer's
        process.wait(10)
    return "".join(seen)


def test_the_readme_tour_works_as_written(start_server, tmp_path):
    server = start_server(QC_ADMIN_USERNAME="", QC_ADMIN_PASSWORD="")
    [admin_file] = (tmp_path / "instance").glob("first-run-admin*.txt")
    section = tour()
    blocks = re.findall(r"```(\w+)\n(.*?)```", section, re.S)
    assert [lang for lang, _ in blocks] == ["sh", "python", "sh"]
    (_, first), (_, python), (_, rest) = [
        (lang, code.replace(TOUR_URL, server.url)
         .replace(f"instance/{TOUR_ADMIN_FILE}", str(admin_file))) for lang, code in blocks]

    shell = Shell(tmp_path)
    try:
        out = shell.paste(first)
        assert '"username":"alice"' in out and '"name":"Check lot 17"' in out, out
        assert '"error"' not in out, out

        # Only what `make run` installed, plus what the tour says to install.
        extra = re.findall(r"\.venv/bin/pip install -r ([\w.-]+)", section)
        distributions = installed_by(ROOT / "requirements.txt", *(ROOT / f for f in extra))
        printed = run_reviewer(
            python, distributions, tmp_path,
            lambda out: "idle: queue-empty" in out and out.count("'status': 'completed'") == 2)
        assert re.findall(r"got task \d+ (Check lot \d+)", printed) == [
            "Check lot 17", "Check lot 18"], printed
        assert printed.count("'status': 'completed'") == 2, printed

        out = shell.paste(rest)
        assert '"error"' not in out, out
        assert re.search(r'"message":"task \d+ completed', out), out
        # The form's fail: stored with its reasons and checklist, listed first in results.
        assert '"reasons":["dent","scratch"]' in out and '"checklist":{"label":true}' in out, out
        assert '"fail_reasons":[{"code":"scratch"' in out, out
        results = json.loads([line for line in out.splitlines() if line.startswith('{"tasks"')][-1])
        assert [(t["name"], t["reasons"]) for t in results["tasks"]] == [
            ("Check lot 20", ["dent", "scratch"]), ("Check lot 19", None)], out
    finally:
        shell.close()
    password = re.search(r"password: (\S+)", admin_file.read_text())[1]
    token = server.login("admin", password)["access_token"]
    listing = server.request("GET", "/tasks?status=pending,assigned", token, expect=200)
    assert listing.json()["tasks"] == []
    completed = server.request("GET", "/tasks?status=completed", token, expect=200)
    assert len(completed.json()["tasks"]) == 4


def test_readme_and_docs_link_only_inside_the_repository():
    for doc in [README, *sorted((ROOT / "docs").glob("*.md"))]:
        text = doc.read_text()
        targets = re.findall(r"\]\(([^)\s]+)\)", text)
        targets += re.findall(r"`(\.\.?/[^`\s]+)`", text)
        for target in targets:
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            path = (doc.parent / target.split("#", 1)[0]).resolve()
            where = f"{doc.relative_to(ROOT)}: {target}"
            assert path.is_relative_to(ROOT), f"{where} points outside the repository"
            assert path.exists(), f"{where} does not exist"

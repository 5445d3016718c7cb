"""docs/architecture.md names files and functions; they must exist, or the
reference has rotted. Checked without importing anything: the code's names are
read from its syntax tree.

What counts as a name in the doc, inside `backticks`:
- a path ending in .py, or a folder ending in /: relative to the repository,
  or to qc_live/ (`lifecycle.py`, `qc_live/sweep.py`, `migrations/versions/`);
- a call, `name()` or `a.b()`: every dotted name with () must be defined in
  qc_live/, run.py or serving.py (a module, then its classes, functions,
  methods and constants: `sweep.requeue_abandoned()`, `Dispatcher.complete()`,
  `Notifier.push_later()`);
- a dotted name without (), `a.b`, whose first part is one of those modules
  or classes (`sql.QUEUE_HEAD`, `queue.DISPATCH_BATCH`, `Config.grace_seconds`,
  `Runtime.local_sockets`: what a method sets on self counts).
  Anything else (`users.offline_since`, a column) is prose.
"""
import ast
import re

from live import ROOT

DOC = ROOT / "docs" / "architecture.md"
CODE = [*sorted((ROOT / "qc_live").rglob("*.py")), ROOT / "run.py", ROOT / "serving.py"]


def defined_names() -> tuple[set[str], set[str]]:
    """(every name a doc may use, the first parts that make a dotted name code)."""
    names, heads = set(), set()

    def add(*qualified):
        for name in qualified:
            names.add(name)

    def targets(node):
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in (node.targets if isinstance(node, ast.Assign) else [node.target]):
                if isinstance(target, ast.Name):
                    yield target.id

    for path in CODE:
        relative = path.relative_to(ROOT / "qc_live") if path.is_relative_to(ROOT / "qc_live") \
            else path.relative_to(ROOT)
        module = ".".join(relative.with_suffix("").parts).removesuffix(".__init__")
        short = module.rsplit(".", 1)[-1]
        tree = ast.parse(path.read_text(), str(path))
        add(module, short)
        heads.update({module, short})
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                add(node.name, f"{module}.{node.name}", f"{short}.{node.name}")
            elif isinstance(node, ast.ClassDef):
                heads.add(node.name)
                add(node.name, f"{module}.{node.name}", f"{short}.{node.name}")
                for item in node.body:
                    members = [item.name] if isinstance(
                        item, (ast.FunctionDef, ast.AsyncFunctionDef)) else list(targets(item))
                    # Attributes its methods set: self.x = ...
                    members += [t.attr for sub in ast.walk(item)
                                if isinstance(sub, (ast.Assign, ast.AnnAssign))
                                for t in (sub.targets if isinstance(sub, ast.Assign)
                                          else [sub.target])
                                if isinstance(t, ast.Attribute)
                                and isinstance(t.value, ast.Name) and t.value.id == "self"]
                    for member in members:
                        add(f"{node.name}.{member}", f"{module}.{node.name}.{member}",
                            f"{short}.{node.name}.{member}")
            for name in targets(node):
                add(name, f"{module}.{name}", f"{short}.{name}")
    return names, heads


def problems(text: str) -> list[str]:
    names, heads = defined_names()
    found = []
    for token in re.findall(r"`([^`\n]+)`", text):
        token = token.strip()
        if re.fullmatch(r"[\w./-]+\.py|[\w./-]+/", token):
            if not any((base / token).exists() for base in (ROOT, ROOT / "qc_live")):
                found.append(f"no file {token}")
            continue
        call = re.fullmatch(r"([A-Za-z_][\w.]*)\(\)", token)
        if call:
            if call.group(1) not in names:
                found.append(f"no function {token}")
            continue
        dotted = re.fullmatch(r"([A-Za-z_]\w*)\.([\w.]+)", token)
        if dotted and dotted.group(1) in heads and token not in names:
            found.append(f"no name {token}")
    return found


def test_every_file_and_name_in_the_architecture_doc_exists():
    assert problems(DOC.read_text()) == []


def test_the_check_finds_what_does_not_exist():
    text = ("`sweep.py` `lifecycle.requeue()` `Dispatcher.complete()` `sql.QUEUE_HEAD` "
            "`users.offline_since` `migrations/versions/` "
            "`qc_live/gone.py` `dispatch.requeue_abandoned()` `Dispatcher.offer_work()` "
            "`queue.NO_SUCH_CONSTANT` `nowhere/`")
    assert problems(text) == [
        "no file qc_live/gone.py", "no function dispatch.requeue_abandoned()",
        "no function Dispatcher.offer_work()", "no name queue.NO_SUCH_CONSTANT",
        "no file nowhere/"]


def test_the_architecture_doc_answers_the_newcomers_questions_by_file():
    text = DOC.read_text()
    for question, answer in [("requeued after a disconnect", "sweep.py"),
                             ("next task chosen", "queue.py"),
                             ("ack recorded", "acks.py")]:
        line = next((line for line in text.splitlines() if question in line), None)
        assert line is not None, f"the doc does not ask where a task is {question}"
        assert f"`{answer}`" in line, f"'{question}' is not answered by {answer}"


def test_the_readme_layout_lists_every_module_of_qc_live_and_no_other():
    text = (ROOT / "README.md").read_text()
    start = text.index("## Project layout")
    opening = text.index("```\n", start) + 4
    block = text[opening:text.index("\n```", opening)]
    inside, listed = False, set()
    for line in block.splitlines():
        if line.startswith("qc_live/"):
            inside = True
        elif inside and line and not line.startswith(" "):
            break  # the next top-level entry
        elif inside and line.startswith("  ") and not line.startswith("   "):
            listed.add(line.split()[0])
    modules = {p.name for p in (ROOT / "qc_live").glob("*.py")}
    modules |= {p.name + "/" for p in (ROOT / "qc_live").iterdir()
                if p.is_dir() and (p / "__init__.py").exists()}
    assert listed == modules, (f"missing from the README: {sorted(modules - listed)}; "
                               f"listed but gone: {sorted(listed - modules)}")


def test_every_error_code_the_server_raises_is_in_the_readme_table():
    """A client branches on `error.code`: each code raised in qc_live/ (a
    `code="..."` argument) is listed in the README's "Error codes" table."""
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("### Error codes"):readme.index("\n## ", readme.index(
        "### Error codes"))]
    listed = set(re.findall(r"`([a-z_]+)`", table))
    raised = {code for path in CODE for code in re.findall(r'\bcode="([a-z_]+)"',
                                                             path.read_text())}
    assert raised, "no codes found: the pattern no longer matches the code"
    assert sorted(raised - listed) == []

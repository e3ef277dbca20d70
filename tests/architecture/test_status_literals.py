"""Job statuses have one home, dljobs/lifecycle.py: no product module spells one as a string."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from dljobs.lifecycle import STATUSES

ROOT = Path(__file__).resolve().parents[2]
# dlcore is left out: it cannot import dljobs and knows no jobs, so a "failed" there (a kit check outcome) is
# not a job status. migrations/ is left out on purpose: a migration is frozen at the schema of its day and
# must not import the live lifecycle.
PRODUCT = [ROOT / "api", ROOT / "workers", ROOT / "dljobs", ROOT / "bench"]
HOME = ROOT / "dljobs" / "lifecycle.py"
STATUS_VALUES = {s.value for s in STATUSES}
#: A status as code spells it inside a longer string: quoted ("status = 'failed'", '{"status": "failed"}').
QUOTED = re.compile(r"""['"](""" + "|".join(sorted(STATUS_VALUES)) + r""")['"]""", re.IGNORECASE)


def _docstring_nodes(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def status_literals(path: Path, root: Path = ROOT) -> list[str]:
    """``file:line value`` of every string constant that spells a job status (docstrings aside)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    skip = _docstring_nodes(tree)
    # A piece of an f-string is prose around the values (f"job {id} succeeded"), unless it quotes a status.
    pieces = {id(v) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for v in node.values}
    return [
        f"{path.relative_to(root)}:{node.lineno} {node.value!r}"
        for node in sorted(ast.walk(tree), key=lambda n: getattr(n, "lineno", 0))
        if isinstance(node, ast.Constant) and isinstance(node.value, str | bytes) and id(node) not in skip
        and (QUOTED.search(node.value) if id(node) in pieces else names_a_status(node.value))
    ]


def names_a_status(value: str | bytes) -> bool:
    """Whether a string constant spells a job status as code would, in any case: the status alone,
    a list of statuses ("queued,running"), or one quoted inside SQL or JSON. Prose that uses the word
    ("reconcile failed") is a message for people, not a status."""
    text = (value.decode(errors="replace") if isinstance(value, bytes) else value).strip()
    items = [t for t in re.split(r"[\s,;|]+", text) if t]
    return bool(items) and all(t.lower() in STATUS_VALUES for t in items) or bool(QUOTED.search(text))


def test_the_scan_finds_a_literal_where_there_is_one(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        '"""queued"""\n'
        'status = "queued"\n'
        'several = "queued,running".split(",")\n'
        'sql = text("UPDATE jobs SET status = \'failed\'")\n'
        'body = \'{"status": "cancelled"}\'\n'
        'raw = b"succeeded"\n'
        'upper = "RUNNING".lower()\n'
        'prose = "the job failed after its worker was lost three times"\n'
        'message = f"job {job_id} succeeded in {seconds} s"\n'
        'query = f"SELECT id FROM jobs WHERE status = \'queued\' AND id = {job_id}"\n'
    )
    assert [hit.split(" ")[0] for hit in status_literals(sample, root=tmp_path)] == [
        f"sample.py:{line}" for line in (*range(2, 8), 10)
    ]


def test_no_job_status_literal_in_product_code_outside_the_lifecycle_module():
    found = [
        hit
        for folder in PRODUCT
        for path in sorted(folder.rglob("*.py"))
        if path != HOME
        for hit in status_literals(path)
    ]
    assert not found, "use dljobs.lifecycle's names:\n" + "\n".join(found)


# The transition table itself is tested in tests/service/test_lifecycle.py.

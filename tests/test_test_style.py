"""The tests' own rules, checked on their source (issue 14): a test waits on a condition — an event, or a
predicate polled to a deadline (`tests.support.wait`) — never for a fixed time.

A `sleep(...)` call outside any `for`/`while` loop is therefore either the subject of its test (a slow
client, a hung upstream, an idle connection: time passing is what is tested) or one loop turn
(`sleep(0)`), and a `#` comment on its line or the line above says which. A sleep inside a loop is a poll
step or a pace, and needs nothing.
"""

from __future__ import annotations

import ast
import io
import tokenize
from typing import TypeGuard

from tests.conftest import REPO

SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)


def commented_lines(text: str) -> set[int]:
    """Line numbers that carry a comment."""
    tokens = tokenize.generate_tokens(io.StringIO(text).readline)
    return {tok.start[0] for tok in tokens if tok.type == tokenize.COMMENT}


def is_sleep(node: ast.AST) -> TypeGuard[ast.Call]:
    """`sleep(...)`, `time.sleep(...)`, `asyncio.sleep(...)`."""
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    return (isinstance(func, ast.Name) and func.id == "sleep") or (
        isinstance(func, ast.Attribute) and func.attr == "sleep"
    )


def bare_sleeps(text: str) -> list[int]:
    """Lines of the sleeps outside any loop (of their own function) with no comment on or above them."""
    comments = commented_lines(text)
    found: list[int] = []

    def visit(node: ast.AST, in_loop: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if is_sleep(child) and not in_loop and not {child.lineno, child.lineno - 1} & comments:
                found.append(child.lineno)
            if isinstance(child, SCOPES):
                visit(child, False)
            else:
                visit(child, in_loop or isinstance(child, ast.For | ast.AsyncFor | ast.While))

    visit(ast.parse(text), False)
    return found


def test_sleeps_are_poll_steps_or_commented_as_the_subject() -> None:
    bare = [
        f"{path.relative_to(REPO)}:{line}"
        for path in sorted((REPO / "tests").rglob("*.py"))
        for line in bare_sleeps(path.read_text())
    ]
    assert bare == [], "wait on the condition (tests/support/wait.py), or say why time must pass"


def test_the_check_sees_a_bare_sleep_and_passes_the_others() -> None:
    source = """
async def f():
    await asyncio.sleep(1.0)
    await asyncio.sleep(2.0)  # the subject: an idle client
    # one loop turn
    await asyncio.sleep(0)
    while not ready():
        await asyncio.sleep(0.05)
    for _ in range(3):
        def inner():
            time.sleep(0.5)
"""
    assert bare_sleeps(source) == [3, 11]

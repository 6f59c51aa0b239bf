"""The documentation site builds with warnings as errors, and its text is clean."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_docs_build_without_warnings(tmp_path):
    pytest.importorskip("sphinx")
    pytest.importorskip("myst_parser")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-q",
            "-b",
            "html",
            str(ROOT / "docs"),
            str(tmp_path / "html"),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (tmp_path / "html" / "api.html").is_file()


def test_no_control_characters_in_docs_and_docstrings():
    """A LaTeX macro written in a non-raw Python string turns into a control character
    (``\\top`` into a tab, ``\\big`` into a backspace, ``\\rm`` into a line break): the theory page
    held seventeen such. No page and no docstring may contain one."""
    import ast
    import re

    bad = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")  # every control character but the newline
    found = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for number, line in enumerate(page.read_text(encoding="utf-8").split("\n"), 1):
            # a "\r" that became a line break leaves a subscript open at the end of a line
            if bad.search(line) or line.endswith(("_{", "^{")):
                found.append(f"{page.name}:{number}")
    sources = [*(ROOT / "specinterp").rglob("*.py"), *(ROOT / "adapters").rglob("*.py")]
    for source in sorted(sources):
        tree = ast.parse(source.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                doc = ast.get_docstring(node, clean=False) or ""
                if bad.search(doc):
                    found.append(f"{source.relative_to(ROOT)}:{getattr(node, 'lineno', 1)}")
    assert not found, f"control characters in {found}"

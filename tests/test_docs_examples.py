"""The code blocks of the documentation pages listed here run, in order, in one namespace.

A page's ``python`` fenced blocks are its promise to a new user; each page is executed as a
script (blocks concatenated), so a renamed function or a changed default fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGES = ["models.md"]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


@pytest.mark.parametrize("page", PAGES)
def test_page_code_blocks_run(page):
    for module in ("torch", "jax", "flax", "equinox", "transformers", "sklearn"):
        pytest.importorskip(module)
    blocks = BLOCK.findall((DOCS / page).read_text())
    assert blocks, f"{page} has no python blocks"
    namespace: dict[str, object] = {"__name__": f"docs_{page}"}
    for i, block in enumerate(blocks):
        code = compile(block, f"{page}[block {i + 1}]", "exec")
        exec(code, namespace)  # the documentation's own examples

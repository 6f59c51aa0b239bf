"""Every code block of README.md and docs/ runs, and every docstring example is a doctest.

A page's fenced blocks are its promise to a new user. Each page runs as one script: its
``python`` blocks are executed in order in one namespace, its ``pycon`` blocks (``>>>`` with
the output the reader sees) are doctests in that same namespace, so a shown output that the
code no longer produces fails here. A block that cannot run on a CI machine (it needs a cluster
at an address) is preceded by ``<!-- not run: reason -->``; it must still compile. Test
functions a page defines (``def test_…``, the property-testing guide) are called.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted(
    p.relative_to(ROOT).as_posix()
    for p in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]
    if re.search(r"^```(python|pycon)\n", p.read_text(), re.M)
)
BLOCK = re.compile(
    r"(?:^<!-- not run: (?P<why>[^>]*?) -->\n)?^```(?P<lang>python|pycon)\n(?P<code>.*?)^```",
    re.S | re.M,
)
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def blocks(page: str) -> list[tuple[str, str, str | None]]:
    """``(language, code, reason it is not run or None)`` of each block of a page, in order."""
    text = (ROOT / page).read_text()
    return [(m["lang"], m["code"], m["why"]) for m in BLOCK.finditer(text)]


def test_pages_with_code_are_found():
    # the pages that teach the API with code; a page losing its blocks should be deliberate
    assert {"README.md", "docs/getting-started.md", "docs/models.md", "docs/testing.md"} <= set(
        PAGES
    )


@pytest.mark.parametrize("page", PAGES)
def test_page_code_blocks_run(page):
    namespace: dict[str, object] = {"__name__": f"docs_{Path(page).stem.replace('-', '_')}"}
    parser, runner = doctest.DocTestParser(), doctest.DocTestRunner(optionflags=FLAGS)
    for i, (lang, code, why) in enumerate(blocks(page)):
        name = f"{page}[block {i + 1}]"
        if lang == "python":
            compiled = compile(code, name, "exec")
            if why is None:
                exec(compiled, namespace)  # the documentation's own example
            continue
        assert why is None, f"{name}: a pycon block shows output, so it must run"
        test = parser.get_doctest(code, namespace, name, page, 0)
        runner.run(test, clear_globs=False)
    summary = runner.summarize(verbose=False)
    assert summary.failed == 0, f"{page}: {summary.failed} shown output(s) differ (see above)"
    for key, value in list(namespace.items()):
        if key.startswith("test_") and callable(value):
            value()  # a test the page asks its reader to write


def test_skipped_blocks_give_a_reason():
    for page in PAGES:
        for _, _, why in blocks(page):
            assert why is None or why.strip(), f"{page}: a block is not run without a reason"


def _modules_with_examples() -> list[str]:
    import specinterp

    names = []
    for info in pkgutil.walk_packages(specinterp.__path__, "specinterp."):
        spec = importlib.util.find_spec(info.name)
        if spec and spec.origin and ">>>" in Path(spec.origin).read_text():
            names.append(info.name)
    return names


@pytest.mark.parametrize("module", _modules_with_examples())
def test_docstring_examples(module):
    mod = importlib.import_module(module)
    result = doctest.testmod(mod, optionflags=FLAGS, verbose=False)
    assert result.failed == 0, f"{module}: {result.failed} docstring example(s) failed"
    assert result.attempted > 0

"""Every chapter executes with papermill in the quick profile (the same path as the book build)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from deipp_core import book

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = book.list_chapters(ROOT)
QUICK = {"data": "twin", "profile": "quick", "seed": 0}


@pytest.mark.notebook
@pytest.mark.parametrize("chapter", CHAPTERS, ids=[c.slug for c in CHAPTERS])
def test_chapter_executes_in_the_quick_profile(chapter, quick_twin_root, build_dir):
    params = {k: v for k, v in QUICK.items() if k in chapter.parameters}
    out = book.execute_chapter(chapter, params, cache_dir=build_dir / "cache", progress=False)
    nb = nbformat.read(out, as_version=4)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if "image/png" in o.get("data", {})]
    assert images, f"chapter {chapter.slug} produced no figure"
    # Text shown on the page: displayed outputs, and outputs glued into the prose (myst-nb stores
    # those under a "application/papermill.record/" MIME prefix).
    shown = [str(v) for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
             for k, v in o.get("data", {}).items() if k.endswith(("text/markdown", "text/plain", "text/html"))]
    assert any("SIMULATED" in t for t in shown), "the page must say plainly that the data are simulated"


@pytest.mark.notebook
def test_a_failing_cell_fails_execution(tmp_path, quick_twin_root):
    src = tmp_path / "broken.md"
    src.write_text(
        "---\njupytext:\n  text_representation:\n    extension: .md\n    format_name: myst\n"
        "kernelspec:\n  display_name: Python 3\n  language: python\n  name: python3\n---\n\n# Broken\n\n"
        "```{code-cell} ipython3\n:tags: [parameters]\ndata = 'twin'\nprofile = 'quick'\nseed = 0\n```\n\n"
        "```{code-cell} ipython3\nraise RuntimeError('this cell fails')\n```\n"
    )
    chapter = book.Chapter("broken", src, "Broken", {"data": "twin", "profile": "quick", "seed": 0})
    with pytest.raises(book.ChapterExecutionError, match="this cell fails"):
        book.execute_chapter(chapter, {}, cache_dir=tmp_path / "cache", progress=False)
    assert not list((tmp_path / "cache").glob("broken-*[!l].ipynb")), "a failed run must not be cached"

"""The book machinery: chapter discovery, parameters, cache keys (the command line: test_cli.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from deipp_core import book
from deipp_core.exceptions import ParameterError

ROOT = Path(__file__).resolve().parent.parent


def test_every_chapter_in_the_toc_has_a_source_and_the_common_parameters():
    chapters = book.list_chapters(ROOT)
    assert chapters, "no chapter found in _toc.yml"
    for chapter in chapters:
        assert chapter.path.suffix == ".md"
        assert chapter.title, f"{chapter.path} has no level-1 heading"
        for name in ("data", "profile", "seed"):
            assert name in chapter.parameters, f"{chapter.slug} lacks the {name!r} parameter"
        assert chapter.parameters["data"] == "twin"
        assert chapter.parameters["profile"] in ("quick", "book", "paper")


def test_every_notebook_source_is_listed_in_the_toc():
    listed = {c.slug for c in book.list_chapters(ROOT)}
    on_disk = {p.stem for p in (ROOT / "notebooks").glob("*.md")}
    assert on_disk == listed


def test_unknown_chapter_parameter_is_refused_with_the_known_ones():
    chapter = book.list_chapters(ROOT)[0]
    with pytest.raises(ParameterError, match="has no parameter"):
        book.check_parameters(chapter, {"not_a_parameter": 1})


def test_cache_key_changes_with_parameters_source_and_data(tmp_path):
    src = tmp_path / "demo.md"
    src.write_text("# Demo\n")
    chapter = book.Chapter("demo", src, "Demo", {"data": "twin", "profile": "quick", "seed": 0})
    base = book.cache_key(chapter, {"seed": 0}, "data-a")
    assert base == book.cache_key(chapter, {"seed": 0}, "data-a")
    assert base != book.cache_key(chapter, {"seed": 1}, "data-a")
    assert base != book.cache_key(chapter, {"seed": 0}, "data-b")
    src.write_text("# Demo, edited\n")
    assert base != book.cache_key(chapter, {"seed": 0}, "data-a")


def test_restrict_toc_keeps_only_requested_chapters_and_other_pages(tmp_path):
    toc = tmp_path / "_toc.yml"
    toc.write_text((ROOT / "_toc.yml").read_text())
    keep = book.list_chapters(ROOT)[0].slug
    book._restrict_toc(toc, [keep])
    files = [c["file"] for p in yaml.safe_load(toc.read_text())["parts"] for c in p["chapters"]]
    assert f"notebooks/{keep}" in files
    assert all(not f.startswith("notebooks/") or f == f"notebooks/{keep}" for f in files)
    assert any(f.startswith("book/") for f in files)

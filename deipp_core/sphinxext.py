"""Sphinx extension of the book: offer each chapter's MyST source for download beside its notebook.

The book's chapters are executed notebooks (``notebooks/<slug>.ipynb``, staged by
:func:`deipp_core.book.build_book`), so sphinx-book-theme's download menu offers the ``.ipynb``. The
tracked sources are MyST Markdown notebooks (``notebooks/<slug>.md``, readable by jupytext); the build
stages them beside the notebooks (excluded from the Sphinx sources by ``_config.yml``). For every page
whose source is an ``.ipynb`` with such a paired ``.md``, this extension

* copies the ``.md`` to ``_sources/<docname>.md`` in the HTML output (next to the theme's
  ``_sources/<docname>.ipynb``), and
* adds a ``.md`` entry to the theme's download menu, right after the notebook.

Plain links, no JavaScript and nothing fetched: it works in offline builds. Enable it with
``sphinx: extra_extensions: [deipp_core.sphinxext]`` in ``_config.yml``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

__all__ = ["MYST_BUTTON_LABEL", "setup", "add_myst_download"]

#: ``label`` of the theme's download menu and of the entry this extension adds.
_DOWNLOAD_GROUP = "download-buttons"
MYST_BUTTON_LABEL = "download-myst-button"


def _paired_source(app, pagename: str, context: dict[str, Any]) -> Path | None:
    if context.get("page_source_suffix") != ".ipynb":
        return None
    md = Path(app.srcdir) / f"{pagename}.md"
    return md if md.is_file() else None


def add_myst_download(app, pagename: str, templatename: str, context: dict[str, Any], doctree) -> None:
    """``html-page-context`` handler: copy the paired ``.md`` and add it to the download menu."""
    md = _paired_source(app, pagename, context)
    if md is None:
        return
    target = Path(app.outdir) / "_sources" / f"{pagename}.md"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(md, target)
    for group in context.get("header_buttons", []):
        if group.get("label") != _DOWNLOAD_GROUP:
            continue
        buttons = group["buttons"]
        entry = {
            "type": "link",
            "url": f"{context['pathto']('_sources', 1)}/{pagename}.md",
            "text": ".md",
            "tooltip": "Download the MyST notebook source (open with jupytext)",
            "icon": "fas fa-file-code",
            "label": MYST_BUTTON_LABEL,
        }
        after = next((i + 1 for i, b in enumerate(buttons) if str(b.get("text", "")).endswith(".ipynb")),
                     len(buttons))
        buttons.insert(after, entry)
        break


def setup(app) -> dict:
    """Register the handler after sphinx-book-theme's header buttons (priority 501)."""
    app.connect("html-page-context", add_myst_download, priority=600)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

"""Build the quick book, serve it on localhost and drive it in headless Chromium (Debian's)."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from pathlib import Path
from urllib.parse import urljoin, urlparse

import pytest

from deipp_core import book

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

pytestmark = pytest.mark.browser

if not Path(CHROMIUM).exists():
    if os.environ.get("CI"):
        raise RuntimeError("CI needs Debian's chromium for the browser test (scripts/ensure-browser.sh)")
    pytest.skip("Debian's chromium is not installed (run scripts/ensure-browser.sh)", allow_module_level=True)


@pytest.fixture(scope="module")
def site(quick_twin_root, build_dir):
    html = book.build_book(profile="quick", output=build_dir, progress=False)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(html))

    class Quiet(handler.func):  # type: ignore[misc,name-defined]
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(html)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", html
    server.shutdown()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-quic"],
        )
        yield b
        b.close()


def _open(browser, url):
    page = browser.new_page()
    outside = []
    page.on("request", lambda req: outside.append(req.url)
            if urlparse(req.url).hostname not in ("127.0.0.1", "localhost") and not req.url.startswith("data:") else None)
    page.goto(url, wait_until="networkidle")
    return page, outside


def test_every_chapter_page_renders_its_figures_offline(site, browser):
    base, html = site
    for chapter in book.list_chapters(ROOT):
        page, outside = _open(browser, urljoin(base, f"notebooks/{chapter.slug}.html"))
        assert chapter.title.split()[0] in page.title() or page.locator("h1").count() >= 1
        imgs = page.locator("main img")
        assert imgs.count() >= 1, f"{chapter.slug}: no figure on the page"
        widths = page.eval_on_selector_all("main img", "els => els.map(e => e.naturalWidth)")
        assert all(w > 0 for w in widths), f"{chapter.slug}: a figure did not load"
        assert "imulated" in page.inner_text("main"), f"{chapter.slug}: the page must say the data are simulated"
        assert outside == [], f"{chapter.slug}: requests left localhost: {outside}"
        page.close()


def test_internal_links_resolve(site, browser):
    base, html = site
    page, outside = _open(browser, base + "index.html")
    hrefs = set()
    for path in html.rglob("*.html"):
        rel = path.relative_to(html).as_posix()
        p, _ = _open(browser, urljoin(base, rel))
        for href in p.eval_on_selector_all("a[href]", "els => els.map(e => e.href)"):
            if urlparse(href).hostname == "127.0.0.1":
                hrefs.add(href.split("#")[0])
        p.close()
    broken = [h for h in sorted(hrefs) if page.request.get(h).status != 200]
    assert not broken, f"broken internal links: {broken}"
    assert outside == []


def test_every_chapter_offers_its_notebook_and_myst_source_for_download(site, browser):
    import json

    base, _ = site
    for chapter in book.list_chapters(ROOT):
        page, outside = _open(browser, urljoin(base, f"notebooks/{chapter.slug}.html"))
        menu = page.locator(".dropdown-download-buttons a[href]")
        hrefs = {h.rsplit(".", 1)[-1]: h for h in menu.evaluate_all("els => els.map(e => e.href)")}
        assert {"ipynb", "md"} <= set(hrefs), f"{chapter.slug}: download menu offers {sorted(hrefs)}"
        nb = page.request.get(hrefs["ipynb"])
        assert nb.status == 200 and json.loads(nb.text())["cells"], f"{chapter.slug}: .ipynb download broken"
        md = page.request.get(hrefs["md"])
        assert md.status == 200 and md.text().startswith("---\njupytext:"), f"{chapter.slug}: .md download broken"
        assert f"({chapter.slug})=" in md.text(), f"{chapter.slug}: the .md download is not this chapter's source"
        if not os.environ.get("DEIPP_REPOSITORY_URL"):  # no repository URL: no launch buttons
            assert page.locator("a[href*='mybinder.org']").count() == 0
        assert outside == []
        page.close()


def test_search_finds_the_study(site, browser):
    base, _ = site
    page, outside = _open(browser, base + "search.html?q=pain")
    page.wait_for_selector("#search-results li, .search li", timeout=15000)
    assert page.locator("#search-results li, .search li").count() > 0
    assert outside == []

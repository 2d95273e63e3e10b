"""The book machinery: chapter discovery, parameters, cache keys (the command line: test_cli.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from source_data_fixture import write_source_data

from deipp_core import book
from deipp_core.cli import main
from deipp_core.exceptions import DataLayoutError, ParameterError

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


def test_partial_build_stub_keeps_the_label_and_title_of_a_left_out_chapter():
    chapter = book.get_chapter("prediction", ROOT)
    nb = book._stub_notebook(chapter, ["training-size"])
    (cell,) = nb.cells
    assert cell.source.startswith("(prediction)=\n# " + chapter.title)
    assert "deipp chapter training-size" in cell.source


# ------------------------------------------------------------------------------------------------
# Published source data: a chapter parameter, part of the cache key, checked before execution
# ------------------------------------------------------------------------------------------------


def test_chapters_with_published_figures_take_source_data():
    with_source = {c.slug for c in book.list_chapters(ROOT) if "source_data" in c.parameters}
    assert {"ledger", "prediction", "training-size"} <= with_source
    for chapter in book.list_chapters(ROOT):
        if chapter.slug in with_source:
            assert chapter.parameters["source_data"] == ""


def test_cache_key_follows_the_content_of_the_source_data_folder(tmp_path, rng):
    write_source_data(tmp_path / "src", rng, participants=("01",))
    src = tmp_path / "demo.md"
    src.write_text("# Demo\n")
    chapter = book.Chapter("demo", src, "Demo", {"data": "twin", "source_data": ""})
    params = {"source_data": str(tmp_path / "src")}
    key = book.cache_key(chapter, params, "data-a")
    assert key == book.cache_key(chapter, params, "data-a")
    assert key != book.cache_key(chapter, {"source_data": ""}, "data-a")
    csv = next((tmp_path / "src").rglob("*_y_yfit_run.csv"))
    text = csv.read_text()
    csv.write_text(text.replace("0.", "0.0", 1))  # same path, other numbers
    assert key != book.cache_key(chapter, params, "data-a")
    csv.write_text(text)
    assert key == book.cache_key(chapter, params, "data-a")


def test_source_data_parameter_is_made_absolute_and_checked(tmp_path, rng, monkeypatch):
    write_source_data(tmp_path / "src", rng, participants=("01",))
    monkeypatch.chdir(tmp_path)
    params = book._prepare_path_parameters({"source_data": "src", "seed": 0})
    assert params == {"source_data": str(tmp_path / "src"), "seed": 0}
    assert book._prepare_path_parameters({"source_data": ""}) == {"source_data": ""}
    with pytest.raises(DataLayoutError, match="does not exist"):
        book._prepare_path_parameters({"source_data": str(tmp_path / "absent")})


def test_build_book_refuses_a_parameter_no_chapter_has_before_running_anything(tmp_path):
    with pytest.raises(ParameterError, match="no chapter built has the parameter"):
        book.build_book(profile="quick", output=tmp_path / "_build", params={"no_such_parameter": 1})
    assert not (tmp_path / "_build").exists()


@pytest.mark.parametrize("command", [["chapter", "ledger", "--no-build"], ["book", "--profile", "quick"]])
def test_cli_missing_source_data_folder_is_one_line_and_non_zero(command, tmp_path, capsys):
    assert main([*command, "--source-data", str(tmp_path / "nonexistent")]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nonexistent" in err[0] and "does not exist" in err[0]


def test_cli_source_data_without_files_names_the_expected_file(tmp_path, capsys):
    (tmp_path / "Figure2.csv").write_text("a,b\n1,2\n")
    assert main(["chapter", "ledger", "--no-build", "--source-data", str(tmp_path)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "sub-01_predict_rating_test_indparc_srcdat_y_yfit_1min.csv" in err[0]


def test_cli_source_data_for_a_chapter_without_published_figures_is_refused(tmp_path, rng, capsys):
    write_source_data(tmp_path, rng, participants=("01",))
    assert main(["chapter", "how-it-works", "--no-build", "--source-data", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "source_data" in err[0]


# ------------------------------------------------------------------------------------------------
# Downloads (.ipynb and .md) and Binder/JupyterHub launch buttons
# ------------------------------------------------------------------------------------------------


def test_launch_buttons_are_off_without_a_repository_url(tmp_path):
    config = book.stage_config(ROOT, tmp_path, environ={})
    assert config["repository"]["url"] == ""
    assert config["launch_buttons"]["binderhub_url"] == "" and config["launch_buttons"]["jupyterhub_url"] == ""
    staged = yaml.safe_load((tmp_path / "_config.yml").read_text())
    assert staged["launch_buttons"]["binderhub_url"] == ""
    assert "deipp_core.sphinxext" in staged["sphinx"]["extra_extensions"]
    assert staged["sphinx"]["recursive_update"] is True  # keeps launch_buttons beside html_theme_options


def test_launch_buttons_follow_the_environment(tmp_path):
    env = {"DEIPP_REPOSITORY_URL": "https://github.com/someone/deipp/",
           "DEIPP_JUPYTERHUB_URL": "https://hub.example.org", "DEIPP_REPOSITORY_BRANCH": "living"}
    config = book.stage_config(ROOT, tmp_path, environ=env)
    assert config["repository"]["url"] == "https://github.com/someone/deipp"
    assert config["repository"]["branch"] == "living"
    assert config["launch_buttons"]["binderhub_url"] == "https://mybinder.org"
    assert config["launch_buttons"]["jupyterhub_url"] == "https://hub.example.org"
    with pytest.raises(ParameterError, match="must look like https://github.com/<owner>/<repository>"):
        book.stage_config(ROOT, tmp_path, environ={"DEIPP_REPOSITORY_URL": "https://example.org/deipp"})


def _mini_book(tmp_path: Path, environ: dict) -> Path:
    """Stage a two-page book (intro + one executed notebook with its MyST source) and build it."""
    import nbformat

    staging = tmp_path / "src"
    (staging / "notebooks").mkdir(parents=True)
    (staging / "book").mkdir()
    book.stage_config(ROOT, staging, environ=environ)
    (staging / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n  - file: notebooks/demo\n")
    (staging / "book" / "intro.md").write_text("# Intro\n\nThe demo chapter.\n")
    (staging / "book" / "references.bib").write_text("")
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    nb.cells = [nbformat.v4.new_markdown_cell("# Demo\n\nText."), nbformat.v4.new_code_cell("1 + 1")]
    nbformat.write(nb, staging / "notebooks" / "demo.ipynb")
    (staging / "notebooks" / "demo.md").write_text("---\njupytext: {}\n---\n# Demo\n")
    return book._jupyter_book(staging, tmp_path / "_build")


@pytest.mark.parametrize("repository", ["", "https://github.com/someone/deipp-living-paper"])
def test_built_pages_offer_ipynb_and_md_and_launch_buttons_only_when_configured(repository, tmp_path):
    html = _mini_book(tmp_path, {"DEIPP_REPOSITORY_URL": repository} if repository else {})
    page = (html / "notebooks" / "demo.html").read_text()
    assert 'href="../_sources/notebooks/demo.ipynb"' in page
    assert 'href="../_sources/notebooks/demo.md"' in page
    assert (html / "_sources" / "notebooks" / "demo.ipynb").is_file()
    assert (html / "_sources" / "notebooks" / "demo.md").read_text().startswith("---\njupytext")
    binder = ("https://mybinder.org/v2/gh/someone/deipp-living-paper/main?urlpath=lab/tree/notebooks/demo.ipynb")
    if repository:
        assert binder in page and "launch-buttons" in page
    else:
        assert "mybinder.org/v2" not in page and "launch-buttons" not in page


def test_binder_image_installs_the_package_and_makes_the_notebooks_the_launch_links_open():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "-e ." in pip
    post = ROOT / "postBuild"
    assert post.stat().st_mode & 0o111, "postBuild must be executable"
    text = post.read_text()
    assert "jupytext --quiet --to ipynb notebooks/*.md" in text and "ensure_twin('quick')" in text

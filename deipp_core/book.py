"""Execute the chapters with papermill and build the website with Jupyter Book 1.x.

The tracked sources are MyST notebooks (``notebooks/*.md``). A build

1. resolves the data source (generating the embedded twin if needed),
2. executes every chapter listed in ``_toc.yml`` with papermill (jupytext turns the ``.md`` into a
   notebook in memory; nothing is written back to the sources), reusing a cached executed notebook
   when its key (chapter source, parameters, ``deipp_core`` source, data fingerprint) is unchanged,
3. stages ``_config.yml``, ``_toc.yml``, ``book/``, the executed notebooks and their MyST sources
   into ``<output>/src`` and runs ``jupyter-book build -W -n --keep-going`` on it, so that a warning,
   a broken reference or a failing cell fails the build.

Every page offers its notebook for download (``.ipynb``, and the MyST ``.md`` through
:mod:`deipp_core.sphinxext`). Binder/JupyterHub launch buttons appear when the repository URL is known:
``repository.url`` in ``_config.yml`` or the environment variable ``DEIPP_REPOSITORY_URL`` (see
:data:`LAUNCH_ENVIRONMENT`); without it the pages have no launch buttons and the build needs no network.

Parameters that name files or folders (:data:`PATH_PARAMETERS`: ``source_data``, the published figure
source data, and ``tops_weights``, the ToPS signature weights) are made absolute and checked before the chapter runs (a one-line error otherwise), and
the *content* of what they name is part of the cache key.
"""

from __future__ import annotations

import ast
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from deipp_core.data.derivatives import code_digest
from deipp_core.exceptions import DataLayoutError, DeippError, ParameterError

__all__ = [
    "Chapter",
    "ChapterExecutionError",
    "book_root",
    "list_chapters",
    "get_chapter",
    "LAUNCH_ENVIRONMENT",
    "PATH_PARAMETERS",
    "cache_key",
    "stage_config",
    "check_parameters",
    "execute_chapter",
    "build_book",
]

logger = logging.getLogger(__name__)

#: Parameters every chapter accepts (papermill parameters cell).
COMMON_PARAMETERS = ("data", "participant", "profile", "seed")

#: Parameters naming a local file or folder: made absolute before execution (``source_data`` is also
#: checked); the content of what they name is part of the cache key (``data`` has its own fingerprint).
PATH_PARAMETERS: tuple[str, ...] = ("source_data", "tops_weights")

#: Environment variables that override the launch settings of ``_config.yml`` when the book is built:
#: variable → (section, key).
LAUNCH_ENVIRONMENT: dict[str, tuple[str, str]] = {
    "DEIPP_REPOSITORY_URL": ("repository", "url"),
    "DEIPP_REPOSITORY_BRANCH": ("repository", "branch"),
    "DEIPP_BINDERHUB_URL": ("launch_buttons", "binderhub_url"),
    "DEIPP_JUPYTERHUB_URL": ("launch_buttons", "jupyterhub_url"),
}


class ChapterExecutionError(DeippError, RuntimeError):
    """A chapter notebook raised while it was executed."""


@dataclass(frozen=True)
class Chapter:
    """One executable chapter of the book.

    Parameters
    ----------
    slug : str
        File stem under ``notebooks/``, used on the command line (``deipp chapter <slug>``).
    path : Path
        The MyST source.
    title : str
        First level-1 heading.
    parameters : dict
        Default values of the papermill parameters cell.
    """

    slug: str
    path: Path
    title: str
    parameters: dict = field(default_factory=dict)


def book_root(start: Path | None = None) -> Path:
    """Folder holding ``_config.yml`` and ``_toc.yml`` (``$DEIPP_BOOK_ROOT``, or searched upwards)."""
    env = os.environ.get("DEIPP_BOOK_ROOT")
    if env:
        return Path(env).resolve()
    candidates = [Path(start or Path.cwd()).resolve(), Path(__file__).resolve().parent.parent]
    for base in candidates:
        for folder in (base, *base.parents):
            if (folder / "_config.yml").is_file() and (folder / "_toc.yml").is_file():
                return folder
    raise DataLayoutError(
        "cannot find the book (a folder with _config.yml and _toc.yml); run from the repository or "
        "set DEIPP_BOOK_ROOT"
    )


def _toc_files(root: Path) -> list[str]:
    import yaml

    toc = yaml.safe_load((root / "_toc.yml").read_text())
    files: list[str] = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                files.append(entry["file"])
            walk(entry.get("sections"))
            for part in entry.get("chapters", []) if "chapters" in entry else []:
                if "file" in part:
                    files.append(part["file"])
                walk(part.get("sections"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return files


def _parse_parameters(source: str, path: Path) -> dict:
    """Literal defaults of the cell tagged ``parameters`` in a jupytext MyST notebook."""
    import jupytext

    nb = jupytext.reads(source, fmt="md:myst")
    for cell in nb.cells:
        if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", []):
            params = {}
            for node in ast.parse(cell.source).body:
                if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                    params[node.targets[0].id] = ast.literal_eval(node.value)
            return params
    raise DataLayoutError(f"{path} has no code cell tagged 'parameters'")


def _title(source: str) -> str:
    for line in source.splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return ""


def list_chapters(root: Path | None = None) -> list[Chapter]:
    """The executable chapters, in table-of-contents order."""
    root = root or book_root()
    chapters = []
    for entry in _toc_files(root):
        path = root / f"{entry}.md"
        if not entry.startswith("notebooks/") or not path.is_file():
            continue
        source = path.read_text()
        chapters.append(Chapter(path.stem, path, _title(source), _parse_parameters(source, path)))
    return chapters


def get_chapter(slug: str, root: Path | None = None) -> Chapter:
    """The chapter called ``slug`` (error listing the known ones otherwise)."""
    import difflib

    chapters = list_chapters(root)
    for chapter in chapters:
        if chapter.slug == slug:
            return chapter
    slugs = [c.slug for c in chapters]
    close = difflib.get_close_matches(str(slug), slugs, n=2, cutoff=0.6)
    hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
    raise ParameterError(f"no chapter {slug!r}; {hint}known chapters: {', '.join(slugs)}")


def _same_kind(value: object, default: object) -> bool:
    """Whether ``value`` may replace a parameter whose default is ``default`` (ints for floats too)."""
    if default is None or isinstance(default, (list, tuple, dict)):
        return True  # no single type to check against
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return isinstance(value, type(default))


def check_parameters(chapter: Chapter, params: dict) -> dict:
    """Validate ``params`` for ``chapter`` and return them merged over its defaults.

    Parameters
    ----------
    chapter : Chapter
        The chapter (its defaults give the known names and their types).
    params : dict
        Parameters to pass to papermill.

    Returns
    -------
    dict
        The chapter's defaults updated with ``params``.

    Raises
    ------
    ParameterError
        An unknown name, a value of another type than the default's (``n_perm="many"``), an unknown
        profile or a seed that is not a non-negative integer.
    """
    from deipp_core.profiles import get_profile

    unknown = sorted(set(params) - set(chapter.parameters))
    if unknown:
        raise ParameterError(
            f"chapter {chapter.slug!r} has no parameter(s) {', '.join(unknown)}; "
            f"its parameters are {', '.join(chapter.parameters)}"
        )
    for name, value in params.items():
        default = chapter.parameters[name]
        if not _same_kind(value, default):
            raise ParameterError(
                f"parameter {name} of chapter {chapter.slug!r} expects a {type(default).__name__} like its "
                f"default {default!r}, got {value!r}"
            )
    merged = {**chapter.parameters, **params}
    if "profile" in merged:
        get_profile(merged["profile"])
    seed = merged.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ParameterError(f"seed must be a non-negative integer, got {seed!r}")
    return merged


def _content_fingerprint(path: Path) -> str:
    """Hash of the bytes of a file, or of every file under a folder (with its relative name)."""
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        h.update((f.relative_to(path).as_posix() if path.is_dir() else f.name).encode() + b"\0")
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        h.update(b"\0")
    return h.hexdigest()[:16]


def cache_key(chapter: Chapter, params: dict, data_fp: str) -> str:
    """Hash of everything an executed chapter depends on.

    The chapter source, the parameters, the ``deipp_core`` source, the data fingerprint and, for each
    of the :data:`PATH_PARAMETERS` that names an existing file or folder, the content of what it names.
    """
    h = hashlib.sha256()
    h.update(chapter.path.read_bytes())
    h.update(json.dumps(params, sort_keys=True, default=str).encode())
    h.update(code_digest().encode())
    h.update(data_fp.encode())
    for name in PATH_PARAMETERS:
        value = params.get(name)
        if value and Path(str(value)).exists():
            h.update(f"{name}={_content_fingerprint(Path(str(value)))}".encode())
    return h.hexdigest()[:20]


def _prepare_path_parameters(params: dict) -> dict:
    """Absolute paths for the :data:`PATH_PARAMETERS`, checked (one-line errors naming the fix)."""
    params = dict(params)
    for name in PATH_PARAMETERS:
        value = params.get(name)
        if not value:
            continue
        path = Path(str(value)).expanduser().resolve()
        if name == "source_data":
            from deipp_core.data.source_data import read_source_data

            read_source_data(path)  # DataLayoutError when the folder is absent or holds no source data
        elif name == "tops_weights":
            from deipp_core.analyses.tops import read_tops_weights

            read_tops_weights(path)  # DataLayoutError when absent, DataFormatError when unreadable
        params[name] = str(path)
    return params


def _hide_injected(nb) -> None:
    """Show the injected parameters (the values used) and hide the defaults cell."""
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if "parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
        if "injected-parameters" in tags and "hide-input" not in tags:
            tags.append("hide-input")


def execute_chapter(
    chapter: Chapter,
    params: dict | None = None,
    *,
    cache_dir: Path,
    force: bool = False,
    progress: bool = True,
) -> Path:
    """Execute ``chapter`` with papermill (or reuse the cached result) and return the ``.ipynb``.

    Raises
    ------
    ChapterExecutionError
        If a cell raises; the message names the chapter and the partially executed notebook.
    """
    import jupytext
    import nbformat
    import papermill

    from deipp_core.data import data_fingerprint, resolve_data

    params = _prepare_path_parameters(check_parameters(chapter, params or {}))
    data_root = resolve_data(params.get("data", "twin"), profile=params.get("profile", "quick"),
                             seed=int(params.get("seed", 0)))
    key = cache_key(chapter, params, data_fingerprint(data_root))
    cache_dir.mkdir(parents=True, exist_ok=True)
    cached = cache_dir / f"{chapter.slug}-{key}.ipynb"
    if cached.is_file() and not force:
        logger.info("chapter %s: unchanged, reusing %s", chapter.slug, cached.name)
        return cached
    logger.info("chapter %s: executing with %s", chapter.slug, params)
    workdir = Path(tempfile.mkdtemp(prefix=f"deipp-{chapter.slug}-"))
    partial = cache_dir / f"{chapter.slug}-{key}.partial.ipynb"
    try:
        nb = jupytext.read(chapter.path, fmt="md:myst")
        try:
            papermill.execute_notebook(
                nb, str(partial), parameters=params, kernel_name="python3", cwd=str(workdir),
                progress_bar=progress, log_output=False,
            )
        except papermill.PapermillExecutionError as err:
            raise ChapterExecutionError(
                f"chapter {chapter.slug!r} failed in cell {err.exec_count}: {err.ename}: {err.evalue} "
                f"(partially executed notebook: {partial})"
            ) from None
        nb = nbformat.read(partial, as_version=4)
        _hide_injected(nb)
        tmp = cached.with_suffix(".tmp")
        nbformat.write(nb, tmp)
        os.replace(tmp, cached)
        partial.unlink(missing_ok=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return cached


def _stub_notebook(chapter: Chapter, built: list[str]):
    """The page of a chapter left out of a partial build: its title and a pointer to `deipp book`.

    It carries the chapter's label and title, so that references from the chapters that were built
    (``{ref}`prediction```) still resolve under ``-W``.
    """
    import nbformat

    text = (f"({chapter.slug})=\n# {chapter.title}\n\nThis chapter is not part of this partial build "
            f"(`deipp chapter {' '.join(built)}`); `deipp book` builds every chapter.\n")
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(text)])


def stage_config(root: Path, staging: Path, environ: Mapping[str, str] | None = None) -> dict:
    """Write the ``_config.yml`` of a build into ``staging`` with the launch settings resolved.

    The :data:`LAUNCH_ENVIRONMENT` variables, when set and not empty, override ``repository.url``,
    ``repository.branch``, ``launch_buttons.binderhub_url`` and ``launch_buttons.jupyterhub_url``.
    Without a repository URL the launch providers are switched off (the theme cannot build launch
    links without one), so the pages have no launch buttons.

    Parameters
    ----------
    root : Path
        Book root holding ``_config.yml``.
    staging : Path
        Folder of the staged book; ``staging/_config.yml`` is written.
    environ : mapping, optional
        Environment to read (default ``os.environ``).

    Returns
    -------
    dict
        The staged configuration.

    Raises
    ------
    ParameterError
        If the repository URL is not ``https://<github|gitlab|bitbucket host>/<owner>/<repository>``.
    """
    import yaml

    environ = os.environ if environ is None else environ
    config = yaml.safe_load((root / "_config.yml").read_text()) or {}
    for var, (section, key) in LAUNCH_ENVIRONMENT.items():
        if environ.get(var):
            config.setdefault(section, {})[key] = environ[var].strip()
    repository = config.setdefault("repository", {})
    url = str(repository.get("url") or "").strip().rstrip("/")
    launch = config.setdefault("launch_buttons", {})
    if url:
        parts = url.split("/")
        if (len(parts) != 5 or parts[0] not in ("https:", "http:") or parts[1] != ""
                or not any(p in parts[2] for p in ("github", "gitlab", "bitbucket"))):
            raise ParameterError(
                f"repository URL {url!r} (repository.url in _config.yml or DEIPP_REPOSITORY_URL) must look like "
                "https://github.com/<owner>/<repository> (GitHub, GitLab or Bitbucket) for launch buttons"
            )
        repository["url"] = url
    else:
        repository["url"] = ""
        for key in ("binderhub_url", "jupyterhub_url"):
            launch[key] = ""
    (staging / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    return config


def build_book(
    *,
    profile: str = "book",
    data: str = "twin",
    seed: int = 0,
    output: Path | None = None,
    chapters: list[str] | None = None,
    force: bool = False,
    progress: bool = True,
    params: Mapping[str, object] | None = None,
    cache_dir: Path | None = None,
) -> Path:
    """Execute the chapters and build the HTML site; returns the ``html`` folder.

    Parameters
    ----------
    profile : str
        Run profile passed to every chapter.
    data : str
        ``"twin"`` or the path of a local copy of ds006815.
    seed : int
        Seed passed to every chapter.
    output : Path, optional
        Build folder (default ``<book root>/_build``); the site is written to ``<output>/html``.
    chapters : list of str, optional
        Only these chapters (slugs); each of the others gets a one-paragraph page with its title and
        label, saying that ``deipp book`` builds it, so that references to it still resolve.
    force : bool
        Re-execute even when a cached result exists.
    progress : bool
        Show papermill's progress bars.
    params : mapping, optional
        Further chapter parameters (e.g. ``{"source_data": "/data/figshare"}``), each given to every
        chapter that declares it.
    cache_dir : Path, optional
        Execution cache (default ``<output>/cache``); ``deipp chapter`` passes the cache it has just
        executed into, so that building the page does not execute the chapter a second time.

    Raises
    ------
    ParameterError
        If a name in ``params`` is a parameter of none of the chapters built.
    """
    from deipp_core.profiles import get_profile

    get_profile(profile)
    root = book_root()
    extra = _prepare_path_parameters(dict(params or {}))  # one-line error before any chapter runs
    selected = [c for c in list_chapters(root) if chapters is None or c.slug in chapters]
    unused = sorted(set(extra) - {name for c in selected for name in c.parameters})
    if unused:
        raise ParameterError(
            f"no chapter built has the parameter(s) {', '.join(unused)}; see `deipp chapters` for the "
            "parameters of each chapter"
        )
    output = (output or root / "_build").resolve()
    staging = output / "src"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    stage_config(root, staging)
    shutil.copy2(root / "_toc.yml", staging / "_toc.yml")
    shutil.copytree(root / "book", staging / "book")
    (staging / "notebooks").mkdir()
    for chapter in selected:
        chapter_params = {"data": data, "profile": profile, "seed": seed, **extra}
        chapter_params = {k: v for k, v in chapter_params.items() if k in chapter.parameters}
        nb_path = execute_chapter(chapter, chapter_params, cache_dir=cache_dir or output / "cache",
                                  force=force, progress=progress)
        shutil.copy2(nb_path, staging / "notebooks" / f"{chapter.slug}.ipynb")
        # the MyST source, offered for download beside the notebook (deipp_core.sphinxext)
        shutil.copy2(chapter.path, staging / "notebooks" / f"{chapter.slug}.md")
    if chapters is not None:
        import nbformat

        for chapter in list_chapters(root):
            if chapter.slug not in chapters:
                nbformat.write(_stub_notebook(chapter, chapters), staging / "notebooks" / f"{chapter.slug}.ipynb")
    return _jupyter_book(staging, output)


def _jupyter_book(staging: Path, output: Path) -> Path:
    """``jupyter-book build -W -n --keep-going`` of a staged book; returns the ``html`` folder."""
    jb = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(jb), "build", str(staging), "--path-output", str(output.parent if output.name == "_build" else output),
           "-W", "-n", "--keep-going"]
    logger.info("building the site: %s", " ".join(cmd))
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise DeippError(f"jupyter-book build failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    html = (output if output.name == "_build" else output / "_build") / "html"
    return html

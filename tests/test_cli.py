"""The ``deipp`` command: every argument a user can get wrong gives one clear line and a non-zero exit.

Usage mistakes (a wrong argument or parameter) exit with 2, data problems (a missing or malformed data
set, an output folder that cannot be written) with 1; the message says what is wrong and what to do.
Unexpected exceptions are not swallowed: they keep their traceback.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from deipp_core import book, cli
from deipp_core.cli import main

ROOT = Path(__file__).resolve().parent.parent
SLUGS = [c.slug for c in book.list_chapters(ROOT)]
DEIPP = Path(sys.executable).parent / "deipp"


def _error(capsys) -> str:
    """The single stderr line of a failed command (fails if there are more, or a traceback)."""
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, f"expected one error line, got:\n{captured.err}"
    assert "Traceback" not in captured.err
    assert lines[0].startswith("deipp")
    return lines[0]


def _run(argv, capsys) -> tuple[int, str]:
    """``main(argv)`` as the console script runs it: argparse exits become return codes."""
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse usage errors
        code = exc.code
    return code, _error(capsys)


@pytest.fixture
def no_execution(monkeypatch):
    """Record what would be executed and built instead of running papermill and jupyter-book."""
    calls = {}

    def execute(chapter, params, **kwargs):
        calls["execute"] = (chapter.slug, params)
        return Path("executed.ipynb")

    def build(**kwargs):
        calls["build"] = kwargs
        return Path("html")

    monkeypatch.setattr(book, "execute_chapter", execute)
    monkeypatch.setattr(book, "build_book", build)
    return calls


@pytest.fixture
def fake_bids(tmp_path):
    """The top of a BIDS data set: enough for the checks that run before any chapter executes."""
    root = tmp_path / "ds"
    root.mkdir()
    (root / "dataset_description.json").write_text('{"Name": "test", "BIDSVersion": "1.8.0"}\n')
    (root / "participants.tsv").write_text("participant_id\nsub-01\nsub-07\n")
    return root


# ---------------------------------------------------------------------------------------- top level


@pytest.mark.parametrize("argv, fragment", [
    ([], "required: command"),
    (["bogus"], "invalid choice: 'bogus'"),
    (["--no-such-option", "chapters"], "unrecognized arguments"),
    (["chapters", "extra"], "unrecognized arguments: extra"),
])
def test_usage_errors_of_the_command(argv, fragment, capsys):
    code, line = _run(argv, capsys)
    assert code == 2
    assert fragment in line and "--help" in line


def test_version_and_listing(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.startswith("deipp ")
    assert main(["chapters"]) == 0
    out = capsys.readouterr().out
    assert all(slug in out for slug in SLUGS) and "profile=" in out


# ------------------------------------------------------------------------------------------ chapter


def test_unknown_chapter_suggests_close_names(capsys):
    code, line = _run(["chapter", "predicton", "--no-build"], capsys)
    assert code == 2
    assert "no chapter 'predicton'" in line and "did you mean 'prediction'" in line
    assert "known chapters" in line and all(slug in line for slug in SLUGS)
    code, line = _run(["chapter", "zzzz", "--no-build"], capsys)
    assert code == 2 and "did you mean" not in line and "known chapters" in line


@pytest.mark.parametrize("participant", ["03", "sub-05", "x", ""])
def test_unknown_participant_lists_the_known_ones(participant, capsys, no_execution):
    code, line = _run(["chapter", "prediction", "--participant", participant, "--no-build"], capsys)
    assert code == 2
    assert f"unknown participant {participant!r}" in line and "'all' or one of 01, 02" in line
    assert "execute" not in no_execution


def test_participant_of_a_local_data_set_is_checked_against_its_participants_tsv(fake_bids, capsys, no_execution):
    code, line = _run(["chapter", "prediction", "--bids", str(fake_bids), "--participant", "02", "--no-build"],
                      capsys)
    assert code == 2 and "one of 01, 07" in line and str(fake_bids) in line
    assert main(["chapter", "prediction", "--bids", str(fake_bids), "--participant", "sub-07", "--no-build"]) == 0
    slug, params = no_execution["execute"]
    assert slug == "prediction"
    assert params["participant"] == "07" and params["data"] == str(fake_bids.resolve())


@pytest.mark.parametrize("argv, fragment", [
    (["--profile", "huge"], "argument --profile: invalid choice: 'huge'"),
    (["--seed", "-1"], "seed must be a non-negative integer, got -1"),
    (["--seed", "1.5"], "seed must be a non-negative integer, got '1.5'"),
    (["--seed", "abc"], "seed must be a non-negative integer, got 'abc'"),
    (["--seed"], "argument --seed: expected one argument"),
    (["--no-such-option"], "unrecognized arguments: --no-such-option"),
])
def test_option_syntax_errors_are_usage_errors(argv, fragment, capsys, no_execution):
    code, line = _run(["chapter", "prediction", *argv], capsys)
    assert code == 2
    assert fragment in line and "--help`" in line
    assert "execute" not in no_execution


def test_missing_slug_is_a_usage_error(capsys):
    code, line = _run(["chapter"], capsys)
    assert code == 2 and "slug" in line


@pytest.mark.parametrize("param, fragment", [
    ("novalue", "--param expects NAME=VALUE"),
    ("=3", "--param expects NAME=VALUE"),
    ("bad name=3", "--param expects NAME=VALUE"),
    ("nosuch=1", "chapter 'prediction' has no parameter(s) nosuch; its parameters are data, participant"),
    ("profile=huge", "unknown profile 'huge'; choose one of quick, book, paper"),
    ("profile=3", "parameter profile of chapter 'prediction' expects a str"),
    ("seed=-3", "seed must be a non-negative integer, got -3"),
    ("seed=2.5", "parameter seed of chapter 'prediction' expects a int"),
    ("seed=True", "parameter seed of chapter 'prediction' expects a int"),
])
def test_bad_parameters_name_the_problem(param, fragment, capsys, no_execution):
    code, line = _run(["chapter", "prediction", "--param", param, "--no-build"], capsys)
    assert code == 2
    assert fragment in line
    assert "execute" not in no_execution


def test_an_option_given_twice_is_refused(capsys, no_execution, fake_bids):
    code, line = _run(["chapter", "prediction", "--seed", "1", "--param", "seed=2", "--no-build"], capsys)
    assert code == 2 and "--seed and --param seed=... both given" in line
    code, line = _run(["chapter", "prediction", "--bids", str(fake_bids), "--param", "data='x'", "--no-build"],
                      capsys)
    assert code == 2 and "either with --bids PATH or with --param data" in line


def test_missing_or_non_bids_data_folder_is_a_data_error(tmp_path, capsys, no_execution):
    code, line = _run(["chapter", "prediction", "--bids", str(tmp_path / "nope"), "--no-build"], capsys)
    assert code == 1 and "neither 'twin' nor an existing folder" in line
    code, line = _run(["chapter", "prediction", "--bids", str(tmp_path), "--no-build"], capsys)
    assert code == 1 and "has no dataset_description.json" in line
    (tmp_path / "dataset_description.json").write_text("{}")
    code, line = _run(["chapter", "prediction", "--bids", str(tmp_path), "--participant", "01", "--no-build"],
                      capsys)
    assert code == 1 and "participants.tsv does not exist" in line
    assert "execute" not in no_execution


def test_valid_arguments_reach_execution_and_build(capsys, no_execution):
    argv = ["chapter", "importance", "--participant", "sub-02", "--profile", "quick", "--seed", "3"]
    assert main(argv) == 0
    slug, params = no_execution["execute"]
    assert slug == "importance"
    defaults = book.get_chapter("importance", ROOT).parameters
    assert params == {**defaults, "participant": "02", "profile": "quick", "seed": 3}
    assert no_execution["build"]["chapters"] == ["importance"]
    assert no_execution["build"]["seed"] == 3 and no_execution["build"]["profile"] == "quick"
    assert "page:" in capsys.readouterr().out


def test_chapter_specific_parameters_keep_their_type(no_execution):
    chapter = next(c for c in book.list_chapters(ROOT)
                   if any(isinstance(v, int) and not isinstance(v, bool) and k != "seed"
                          for k, v in c.parameters.items()))
    name = next(k for k, v in chapter.parameters.items()
                if isinstance(v, int) and not isinstance(v, bool) and k != "seed")
    assert main(["chapter", chapter.slug, "--param", f"{name}=7", "--no-build"]) == 0
    assert no_execution["execute"][1][name] == 7


def test_a_failing_chapter_is_a_one_line_data_error(monkeypatch, capsys):
    def fail(chapter, params, **kwargs):
        raise book.ChapterExecutionError(f"chapter {chapter.slug!r} failed in cell 3: ValueError: boom")

    monkeypatch.setattr(book, "execute_chapter", fail)
    code, line = _run(["chapter", "prediction", "--no-build"], capsys)
    assert code == 1 and "failed in cell 3" in line


def test_unexpected_exceptions_keep_their_traceback(monkeypatch):
    def crash(*args, **kwargs):
        raise RuntimeError("a bug, not a user mistake")

    monkeypatch.setattr(book, "execute_chapter", crash)
    with pytest.raises(RuntimeError, match="a bug"):
        main(["chapter", "prediction", "--no-build"])


# --------------------------------------------------------------------------------------------- twin


@pytest.fixture
def no_twin(monkeypatch):
    calls = []
    from deipp_core.data import twin

    monkeypatch.setattr(twin, "generate_twin", lambda root, config, **kw: calls.append((root, config, kw)) or root)
    return calls


@pytest.mark.parametrize("argv, fragment", [
    (["--scale", "huge"], "argument --scale: invalid choice: 'huge'"),
    (["--seed", "-2"], "seed must be a non-negative integer, got -2"),
    (["--seed", "x"], "seed must be a non-negative integer, got 'x'"),
    (["--null=yes"], "ignored explicit argument 'yes'"),
])
def test_twin_option_errors(argv, fragment, capsys, no_twin):
    code, line = _run(["twin", *argv], capsys)
    assert code == 2 and fragment in line and "deipp twin --help" in line
    assert not no_twin


def test_twin_refuses_a_non_empty_output_folder_without_overwrite(tmp_path, capsys, no_twin):
    out = tmp_path / "full"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    code, line = _run(["twin", "--scale", "quick", "--out", str(out)], capsys)
    assert code == 2 and "exists and is not empty" in line and "--overwrite" in line
    assert not no_twin
    assert main(["twin", "--scale", "quick", "--out", str(out), "--overwrite"]) == 0
    (root, config, kw) = no_twin[0]
    assert root == out and config.scale == "quick" and kw == {"seed": 0, "null": False, "overwrite": True}


def test_twin_into_an_empty_or_new_folder(tmp_path, no_twin, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["twin", "--scale", "quick", "--out", str(tmp_path / "empty"), "--seed", "4", "--null"]) == 0
    assert main(["twin", "--scale", "paper", "--out", str(tmp_path / "new" / "twin")]) == 0
    assert [(c[1].scale, c[2]["seed"], c[2]["null"]) for c in no_twin] == [("quick", 4, True), ("paper", 0, False)]
    assert capsys.readouterr().out.split() == [str(tmp_path / "empty"), str(tmp_path / "new" / "twin")]


def test_twin_output_that_cannot_be_written(tmp_path, capsys, no_twin):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    code, line = _run(["twin", "--scale", "quick", "--out", str(a_file)], capsys)
    assert code == 2 and "is a file; give a folder path" in line
    code, line = _run(["twin", "--scale", "quick", "--out", str(a_file / "twin")], capsys)
    assert code == 1 and "cannot write to" in line and "choose another --out" in line
    assert not no_twin


def test_twin_write_failure_is_reported_without_traceback(tmp_path, capsys, monkeypatch):
    from deipp_core.data import twin

    def full_disk(root, config, **kw):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(twin, "generate_twin", full_disk)
    code, line = _run(["twin", "--scale", "quick", "--out", str(tmp_path / "t")], capsys)
    assert code == 1 and "No space left on device" in line and "choose another --out" in line


# --------------------------------------------------------------------------------------------- book


@pytest.mark.parametrize("argv, code, fragment", [
    (["--profile", "fast"], 2, "argument --profile: invalid choice: 'fast'"),
    (["--seed", "-5"], 2, "seed must be a non-negative integer, got -5"),
    (["--bids", "/no/such/folder"], 1, "neither 'twin' nor an existing folder"),
])
def test_book_option_errors(argv, code, fragment, capsys, no_execution):
    got, line = _run(["book", *argv], capsys)
    assert got == code and fragment in line
    assert "build" not in no_execution


def test_book_output_must_be_a_writable_folder(tmp_path, capsys, no_execution):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    code, line = _run(["book", "--output", str(a_file)], capsys)
    assert code == 2 and "is a file" in line
    code, line = _run(["book", "--output", str(a_file / "site")], capsys)
    assert code == 1 and "cannot write to" in line
    assert main(["book", "--output", str(tmp_path / "site"), "--seed", "2"]) == 0
    assert no_execution["build"]["output"] == tmp_path / "site" and no_execution["build"]["seed"] == 2


# --------------------------------------------------------------------------------------- subprocess


@pytest.mark.parametrize("argv, code", [
    (["chapter", "predicton", "--no-build"], 2),
    (["chapter", "prediction", "--seed", "-1"], 2),
])
def test_console_script_prints_one_line_and_no_traceback(argv, code, tmp_path):
    exe = [str(DEIPP)] if DEIPP.is_file() else [sys.executable, "-m", "deipp_core.cli"]
    proc = subprocess.run([*exe, *argv], capture_output=True, text=True, cwd=ROOT,
                          env={"PATH": "/usr/bin:/bin", "DEIPP_DATA_DIR": str(tmp_path), "HOME": str(tmp_path)})
    assert proc.returncode == code
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert proc.stdout == ""


def test_parser_is_the_one_line_parser_for_every_subcommand():
    parser = cli.build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command").choices
    assert subparsers and all(isinstance(p, cli._Parser) for p in subparsers.values())


# ---------------------------------------------------------------------- chapter files, plan command


@pytest.mark.parametrize("option, slug, fragment", [
    ("--source-data", "prediction", "source"),
    ("--tops-weights", "what-cannot-be-rerun", "does not exist"),
])
def test_missing_input_files_are_data_errors_before_execution(option, slug, fragment, tmp_path, capsys,
                                                               monkeypatch):
    if slug not in SLUGS:
        pytest.skip(f"no chapter {slug} in this book")

    def no_generation(*args, **kwargs):
        raise AssertionError("the data were resolved although an input file is missing")

    monkeypatch.setattr("deipp_core.data.resolve_data", no_generation)
    code, line = _run(["chapter", slug, option, str(tmp_path / "missing"), "--no-build"], capsys)
    assert code == 1 and fragment in line.lower() and str(tmp_path / "missing") in line


def test_tops_weights_of_the_wrong_size_are_a_data_error(tmp_path, capsys, monkeypatch):
    if "what-cannot-be-rerun" not in SLUGS:
        pytest.skip("no ToPS chapter in this book")
    bad = tmp_path / "weights.csv"
    bad.write_text("0.1\n0.2\n0.3\n")
    code, line = _run(["chapter", "what-cannot-be-rerun", "--tops-weights", str(bad), "--no-build"], capsys)
    assert code == 1 and str(bad) in line


@pytest.mark.parametrize("argv, fragment", [
    (["--target-r", "1.5"], "--target-r values must lie strictly between 0 and 1"),
    (["--target-r", "0"], "--target-r values must lie strictly between 0 and 1"),
    (["--target-r", "high"], "argument --target-r: invalid float value: 'high'"),
    (["--probability", "0.3"], "--probability must be in [0.5, 1)"),
    (["--n-boot", "0"], "--n-boot must be a positive integer"),
    (["--n-jobs", "0"], "--n-jobs must be a number of workers >= 1, or -1"),
    (["--minutes", "-5"], "--minutes values must be positive"),
    (["--seed", "-1"], "seed must be a non-negative integer, got -1"),
    (["--level", "hour"], "argument --level: invalid choice: 'hour'"),
    (["--profile", "huge"], "argument --profile: invalid choice: 'huge'"),
    (["--participant", "03"], "unknown participant '03'; choose 'all' or one of 01, 02"),
])
def test_plan_option_errors_come_before_any_work(argv, fragment, capsys, monkeypatch):
    def no_loading(*args, **kwargs):
        raise AssertionError("data were loaded although an argument is wrong")

    monkeypatch.setattr("deipp_core.data.load_dataset", no_loading)
    code, line = _run(["plan", *argv], capsys)
    assert code == 2 and fragment in line


def test_plan_missing_bids_folder_is_a_data_error(tmp_path, capsys):
    code, line = _run(["plan", "--bids", str(tmp_path / "nope")], capsys)
    assert code == 1 and "neither 'twin' nor an existing folder" in line


def test_chapter_command_executes_once_and_builds_the_page_from_that_execution(monkeypatch, tmp_path, capsys):
    """``deipp chapter`` executes the notebook, then builds its page: the build must reuse the
    execution (same cache folder, so the same cached notebook), not run the chapter a second time."""
    calls = []

    def fake_execute(chapter, params, *, cache_dir, force=False, progress=True):
        calls.append((chapter.slug, dict(params), Path(cache_dir)))
        out = tmp_path / f"{chapter.slug}.ipynb"
        out.write_text("{}")
        return out

    monkeypatch.setattr(book, "execute_chapter", fake_execute)
    monkeypatch.setattr(book, "_jupyter_book", lambda staging, output: output / "html")
    monkeypatch.setattr(book, "book_root", lambda: tmp_path / "root")
    chapters = book.list_chapters(ROOT)
    monkeypatch.setattr(book, "list_chapters", lambda root=None: chapters)
    (tmp_path / "root").mkdir()
    for name in ("_config.yml", "_toc.yml"):
        (tmp_path / "root" / name).write_text((ROOT / name).read_text())
    shutil.copytree(ROOT / "book", tmp_path / "root" / "book")
    assert main(["-q", "chapter", "how-it-works", "--profile", "quick"]) == 0
    slugs = [c[0] for c in calls]
    assert slugs.count("how-it-works") == 2, slugs
    first, second = [c for c in calls if c[0] == "how-it-works"]
    assert first[1] == second[1] and first[2] == second[2]

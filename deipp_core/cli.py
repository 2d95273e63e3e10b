"""The ``deipp`` command: generate the twin, list and rerun chapters, build the book.

Examples
--------
``deipp chapters`` lists the chapters and their parameters;
``deipp chapter prediction --participant 02 --profile paper --bids /data/ds006815`` reruns one chapter
and rebuilds its page; ``deipp book`` builds the whole site; ``deipp twin --scale paper`` writes the
digital twin.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from deipp_core import __version__
from deipp_core.exceptions import DataLayoutError, DeippError, ParameterError

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    """``argparse`` parser whose usage errors are one line naming the help to read (exit code 2)."""

    def error(self, message: str):  # noqa: D401 - argparse hook
        self.exit(2, f"{self.prog}: error: {message}; see `{self.prog} --help`\n")


def _seed(text: str) -> int:
    """``--seed`` values: non-negative integers (the seeds of numpy's SeedSequence)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seed must be a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"seed must be a non-negative integer, got {value}")
    return value


def _parse_param(text: str) -> tuple[str, object]:
    import ast

    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep or not name.isidentifier():
        raise ParameterError(
            f"--param expects NAME=VALUE with a parameter name before '=', got {text!r}; "
            "e.g. --param n_perm=100 (see `deipp chapters` for each chapter's parameters)"
        )
    try:
        return name, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return name, value


def _check_output(path: Path, overwrite: bool, option: str) -> Path:
    """Refuse an output folder that holds files (unless ``overwrite``) or cannot be written."""
    import os

    path = path.expanduser()
    if path.exists() and not path.is_dir():
        raise ParameterError(f"{option} {path} is a file; give a folder path")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise ParameterError(f"{option} {path} exists and is not empty; choose another folder or add --overwrite")
    parent = next((p for p in (path, *path.parents) if p.exists()), None)
    if parent is None or not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise DataLayoutError(f"cannot write to {path}: {parent} is not a writable folder; choose another {option}")
    return path


def _cmd_twin(args) -> int:
    from deipp_core.data import twin_root
    from deipp_core.data.twin import TwinConfig, generate_twin

    config = {"quick": TwinConfig.quick, "paper": TwinConfig.paper}[args.scale]()
    out = Path(args.out) if args.out else twin_root(args.scale, args.seed, args.null)
    out = _check_output(out, args.overwrite, "--out")
    try:
        generate_twin(out, config, seed=args.seed, null=args.null, overwrite=args.overwrite)
    except OSError as err:  # e.g. a read-only file system or a full disk, found while writing
        raise DataLayoutError(f"cannot write the twin to {out}: {err.strerror or err}; choose another --out") from err
    print(out)
    return 0


def _cmd_chapters(args) -> int:
    from deipp_core.book import list_chapters

    for chapter in list_chapters():
        params = ", ".join(f"{k}={v!r}" for k, v in chapter.parameters.items())
        print(f"{chapter.slug:<22} {chapter.title}\n{'':<22} parameters: {params}")
    return 0


def _chapter_params(args) -> dict:
    params = dict(_parse_param(p) for p in args.param)
    if args.bids:
        if "data" in params:
            raise ParameterError("give the data set either with --bids PATH or with --param data=..., not both")
        params["data"] = str(Path(args.bids).expanduser().resolve())
    for name in ("participant", "profile", "seed"):
        value = getattr(args, name)
        if value is not None:
            if name in params:
                raise ParameterError(f"--{name} and --param {name}=... both given; keep one")
            params[name] = value
    from deipp_core.book import PATH_PARAMETERS

    for name in PATH_PARAMETERS:  # --source-data, --tops-weights; made absolute and checked by deipp_core.book
        value = getattr(args, name, None)
        if value:
            if name in params:
                raise ParameterError(f"--{name.replace('_', '-')} and --param {name}=... both given; keep one")
            params[name] = value
    return params


def _check_data_and_participant(params: dict) -> dict:
    """Resolve a local data set and check the participant before the (slow) execution starts."""
    from deipp_core.data import participant_labels, resolve_data

    data = params.get("data", "twin")
    if str(data) != "twin":
        resolve_data(data)  # raises DataLayoutError for a missing folder or a non-BIDS folder
    participant = params.get("participant")
    if participant is not None and participant != "all":
        label = str(participant).removeprefix("sub-")
        known = participant_labels(data)
        if label not in known:
            raise ParameterError(
                f"unknown participant {participant!r}; choose 'all' or one of {', '.join(known)} "
                f"(the participants of {'the twin' if str(data) == 'twin' else data})"
            )
        params["participant"] = label
    return params


def _cmd_chapter(args) -> int:
    from deipp_core.book import book_root, build_book, check_parameters, execute_chapter, get_chapter

    chapter = get_chapter(args.slug)
    params = _check_data_and_participant(check_parameters(chapter, _chapter_params(args)))
    root = book_root()
    cache_dir = root / "_build" / "cache"
    nb = execute_chapter(chapter, params, cache_dir=cache_dir, force=args.force)
    print(f"executed notebook: {nb}")
    if not args.no_build:
        profile = params.get("profile", chapter.parameters.get("profile", "quick"))
        html = build_book(profile=profile, data=params.get("data", "twin"), seed=params.get("seed", 0),
                          output=root / "_build" / "chapters" / chapter.slug, chapters=[chapter.slug],
                          params={k: v for k, v in params.items() if k not in ("data", "profile", "seed")},
                          cache_dir=cache_dir)
        print(f"page: {html / 'notebooks' / (chapter.slug + '.html')}")
    return 0


def _cmd_book(args) -> int:
    from deipp_core.book import build_book
    from deipp_core.data import resolve_data

    data = str(Path(args.bids).expanduser().resolve()) if args.bids else "twin"
    if args.bids:
        resolve_data(data)  # a clear error before any chapter runs
    output = _check_output(Path(args.output), True, "--output") if args.output else None
    extra = {"source_data": args.source_data} if args.source_data else None  # checked by build_book
    html = build_book(profile=args.profile, data=data, seed=args.seed, output=output, force=args.force,
                      params=extra)
    print(f"site: {html / 'index.html'}")
    return 0


def _cmd_plan(args) -> int:
    import pandas as pd

    from deipp_core.analyses import predict_participant
    from deipp_core.analyses.planner import (
        fit_saturating,
        format_plan_table,
        plan_table,
        planner_training_size,
    )
    from deipp_core.data import load_dataset

    bad = [t for t in args.target_r if not 0.0 < t < 1.0]
    if bad:
        raise ParameterError(f"--target-r values must lie strictly between 0 and 1; got {bad}")
    if not 0.5 <= args.probability < 1.0:
        raise ParameterError(f"--probability must be in [0.5, 1); got {args.probability}")
    if args.n_boot < 1:
        raise ParameterError(f"--n-boot must be a positive integer; got {args.n_boot}")
    if args.n_jobs == 0:
        raise ParameterError("--n-jobs must be a number of workers >= 1, or -1 for all cores; got 0")
    if args.minutes is not None and min(args.minutes) <= 0:
        raise ParameterError(f"--minutes values must be positive session lengths; got {args.minutes}")
    data = str(Path(args.bids).expanduser().resolve()) if args.bids else "twin"
    # the data folder and the participant are checked before the twin is generated or read
    checked = _check_data_and_participant({"data": data, "participant": args.participant})
    wanted = None if checked["participant"] in (None, "all") else checked["participant"]
    dataset = load_dataset(data, profile=args.profile, seed=args.seed, participants=wanted)
    curves = {}
    for label in sorted(dataset.participants):
        main = predict_participant(dataset, label, profile=args.profile, seed=args.seed, n_jobs=args.n_jobs)
        results = planner_training_size(dataset, label, profile=args.profile, seed=args.seed,
                                        n_jobs=args.n_jobs, features=main.features, cv=main.cv,
                                        minutes=args.minutes is not None)
        curves[f"sub-{label}"] = fit_saturating(results, levels=[args.level], n_boot=args.n_boot,
                                                seed=args.seed, participant=f"sub-{label}")
    table = plan_table(curves, args.target_r, args.probability, levels=[args.level],
                       minutes=args.minutes or None)
    source = "SIMULATED digital twin" if dataset.is_simulated else dataset.description
    print(f"Sessions needed to reach held-out r >= target with probability {args.probability:g} "
          f"({args.level} level; {source}; profile {args.profile}); [95 % bootstrap interval]")
    with pd.option_context("display.width", 200, "display.max_colwidth", 80):
        print(format_plan_table(table).to_string())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="deipp", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"deipp {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("twin", help="write the digital twin (simulated data set in the study's layout)")
    p.add_argument("--scale", choices=["quick", "paper"], default="paper")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--null", action="store_true", help="no pain signal (for calibration)")
    p.add_argument("--out", help="output folder (default: the embedded twin's location)")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=_cmd_twin)

    p = sub.add_parser("chapters", help="list the chapters and their parameters")
    p.set_defaults(func=_cmd_chapters)

    p = sub.add_parser("chapter", help="execute one chapter with papermill and rebuild its page")
    p.add_argument("slug", help="chapter name, as listed by `deipp chapters`")
    p.add_argument("--participant")
    p.add_argument("--profile", choices=["quick", "book", "paper"])
    p.add_argument("--bids", metavar="PATH", help="run on a local copy of ds006815 instead of the twin")
    p.add_argument("--seed", type=_seed)
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="any other parameter of the chapter (repeatable)")
    p.add_argument("--force", action="store_true", help="re-execute even if a cached result exists")
    p.add_argument("--no-build", action="store_true", help="execute only; do not rebuild the page")
    p.add_argument("--tops-weights", metavar="PATH",
                   help="the ToPS weights (model/ToPS_weight.mat of the ToPS repository, on request from its "
                        "authors) for the chapters that run the ToPS comparison (what-cannot-be-rerun)")
    p.add_argument("--source-data", metavar="PATH",
                   help="folder of the paper's published figure source data (figshare); shown beside this build")
    p.set_defaults(func=_cmd_chapter)

    p = sub.add_parser("book", help="execute every chapter and build the website")
    p.add_argument("--profile", choices=["quick", "book", "paper"], default="book")
    p.add_argument("--bids", metavar="PATH", help="build on a local copy of ds006815 instead of the twin")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--output", help="build folder (default: _build in the repository)")
    p.add_argument("--source-data", metavar="PATH",
                   help="folder of the paper's published figure source data (figshare), given to the chapters "
                        "that show it")
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=_cmd_book)

    p = sub.add_parser("plan", help="study planner: sessions needed to reach a target r with a given "
                                    "probability (from the training-size curves)")
    p.add_argument("--target-r", type=float, nargs="+", default=[0.2, 0.3, 0.4], metavar="R",
                   help="target held-out correlation(s), each in (0, 1)")
    p.add_argument("--probability", type=float, default=0.8, help="required probability, in [0.5, 1)")
    p.add_argument("--level", choices=["1min", "2min", "run", "session"], default="1min")
    p.add_argument("--participant", default="all", help='"01", "02" or "all"')
    p.add_argument("--profile", choices=["quick", "book", "paper"], default="quick")
    p.add_argument("--bids", metavar="PATH", help="plan from a local copy of ds006815 instead of the twin")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--minutes", type=float, nargs="+", metavar="MIN",
                   help="plan for sessions of these many minutes instead of full sessions, e.g. 10 20 30 "
                        "(runs the run-subset training-size fits)")
    p.add_argument("--n-boot", type=int, default=500, help="bootstrap resamples of the curve fit")
    p.add_argument("--n-jobs", type=int, default=1)
    p.set_defaults(func=_cmd_plan)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``deipp`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="deipp: %(message)s", stream=sys.stderr)
    try:
        return args.func(args)
    except ParameterError as err:  # a wrong argument: usage error
        print(f"deipp: error: {err}", file=sys.stderr)
        return 2
    except DeippError as err:  # data missing or malformed, a chapter that failed
        print(f"deipp: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("deipp: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

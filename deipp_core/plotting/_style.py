"""Colours and labels shared by the figures (the original ``call_colors``)."""

from __future__ import annotations

#: The original's ``fourunits`` palette (RGB/255): 1-min, 2-min, run, session.
LEVEL_COLORS: dict[str, tuple[float, float, float]] = {
    "1min": (100 / 255, 197 / 255, 235 / 255),
    "2min": (254 / 255, 179 / 255, 38 / 255),
    "run": (232 / 255, 77 / 255, 138 / 255),
    "session": (127 / 255, 88 / 255, 175 / 255),
}

LEVEL_LABELS: dict[str, str] = {"1min": "1 min", "2min": "2 min", "run": "Run", "session": "Session"}

#: Dot sizes of the original scatter plots per level.
LEVEL_SIZES: dict[str, float] = {"1min": 14, "2min": 18, "run": 26, "session": 40}


def data_source_note(description: str, simulated: bool) -> str:
    """One line to print under a figure saying which data it shows."""
    return f"{'SIMULATED data — ' if simulated else ''}{description}"

"""CI's closing table: each phase's wall time and a projection of the whole run to the eight-chapter course.

    python tools/ci_report.py "install: 130 s" "test: 280 s" ...     # called by .ci/run with its phase times

The projection is arithmetic on what this run measured, with its assumptions printed beside it:
- notebooks, site and site-test grow with the number of pages: each new chapter adds the mean number of notebooks of
  the chapters there are, each as slow as the mean quick notebook here times ``HEAVIER`` (chapters 6-8 train and
  sample a text-to-image model: assume them twice as heavy);
- the exercise-grading part of ``test`` grows with the number of sets, at the mean per-set grading time measured
  here (``_build/grading-times.json``, written by tests/exercises), shared by the test workers;
- install, the Colab-like venv and the rest of ``test`` stay as they are.
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_CHAPTERS = 8
HEAVIER = 2.0
TEST_WORKERS = 2  # the cores the test workers share (make test runs 3 workers on 2 cores)


def parse_phases(args: list[str]) -> dict[str, float]:
    phases = {}
    for arg in args:
        m = re.match(r"\s*([\w-]+): (?:FAILED after )?(\d+) s", arg)
        if m:
            phases[m.group(1)] = float(m.group(2))
    return phases


def project(phases: dict[str, float]) -> list[str]:
    lines = []
    timings_path, grading_path = ROOT / "_build" / "timings.json", ROOT / "_build" / "grading-times.json"
    notebooks = json.loads(timings_path.read_text()) if timings_path.exists() else []
    chapters = defaultdict(list)
    for row in notebooks:
        if row.get("seconds") is not None:
            chapters[Path(row["notebook"]).parent.name].append(row["seconds"])
    projected = dict(phases)
    if chapters:
        n_now = sum(map(len, chapters.values()))
        per_chapter = n_now / len(chapters)
        mean_s = sum(sum(v) for v in chapters.values()) / n_now
        new = (TARGET_CHAPTERS - len(chapters)) * per_chapter
        growth = (n_now + new * HEAVIER) / n_now
        for phase in ("notebooks", "site", "site-test"):
            if phase in phases:
                projected[phase] = phases[phase] * growth
        lines.append(
            f"notebooks: {n_now} in {len(chapters)} chapters, mean {mean_s:.0f} s each (quick profile); "
            f"+{new:.0f} notebooks at {HEAVIER:g}x for chapters {len(chapters) + 1}-{TARGET_CHAPTERS}: "
            f"x{growth:.2f} on notebooks, site and site-test"
        )
    if grading_path.exists() and "test" in phases:
        per_set = defaultdict(float)
        for key, seconds in json.loads(grading_path.read_text()).items():
            per_set[key.split("/")[0]] += seconds
        mean_set = sum(per_set.values()) / len(per_set)
        extra = (TARGET_CHAPTERS - len(per_set)) * mean_set / TEST_WORKERS
        projected["test"] = phases["test"] + max(extra, 0.0)
        lines.append(
            f"grading: {len(per_set)} sets, mean {mean_set:.0f} s of grading runs each (quick mode); "
            f"+{TARGET_CHAPTERS - len(per_set)} sets on {TEST_WORKERS} workers: +{extra:.0f} s on test"
        )
    total_now, total_8 = sum(phases.values()), sum(projected.values())
    lines.append(
        f"total: {total_now:.0f} s now ({total_now / 60:.1f} min); projected to {TARGET_CHAPTERS} chapters: "
        f"{total_8:.0f} s ({total_8 / 60:.1f} min)"
    )
    return lines


def main(argv: list[str] | None = None) -> int:
    phases = parse_phases(sys.argv[1:] if argv is None else argv)
    print(f"== projection to {TARGET_CHAPTERS} chapters")
    for line in project(phases):
        print("   " + line)
    return 0


if __name__ == "__main__":
    sys.exit(main())

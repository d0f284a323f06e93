"""Gradescope's entry point: grade ``/autograder/submission/*.ipynb`` with the isolated grader.

The autograder bundle (``exercises/tools.py build``) carries this package and a ``run_autograder`` that calls
``python -m grader.gradescope`` in otter's environment, instead of otter's own in-kernel run. Gradescope runs it as
root in a fresh container, so the submission gets its own uid; the hidden tests and the results folder are made
readable by root only before the submission's process starts. Writes Gradescope's ``results/results.json``: one
entry per question (score, maximum, the first failing test's message), shown to students once grades are
published; the notebook's own ``grader.check`` cells give them the public tests while they work.

    python -m grader.gradescope [--root /autograder]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .policy import REFERENCE_ANSWERS
from .runner import grade_notebook
from .sandbox import protect


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default="/autograder", help="Gradescope's autograder folder")
    root = Path(parser.parse_args(argv).root)
    source, results = root / "source", root / "results"
    results.mkdir(parents=True, exist_ok=True)
    set_name = json.loads((source / "course_set.json").read_text())["set"]
    notebooks = sorted((root / "submission").glob("*.ipynb"))
    protect([source / "tests", results, root / "submission"])
    if len(notebooks) != 1:
        found = ", ".join(p.name for p in notebooks) or "none"
        (results / "results.json").write_text(
            json.dumps({"score": 0, "output": f"Upload exactly one .ipynb file (found: {found})."})
        )
        return 0
    graded = grade_notebook(notebooks[0], source, refused=REFERENCE_ANSWERS.get(set_name, []))
    tests = [
        {
            "name": q,
            "score": graded.scores.get(q, 0.0),
            "max_score": p,
            "visibility": "after_published",
            "output": "passed" if graded.scores.get(q, 0.0) >= p else graded.reasons.get(q, graded.error or "failed"),
        }
        for q, p in graded.possible.items()
    ]
    output = [f"Graded in {graded.seconds:.0f} s; {graded.isolation}."]
    if graded.error:
        output.append(graded.error)
    (results / "results.json").write_text(
        json.dumps(
            {"score": round(sum(graded.scores.values()), 6), "output": " ".join(output), "tests": tests}, indent=2
        )
    )
    print(" ".join(output))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``GradingGuard``: where a set's grading limits live (the masters' ASSIGNMENT CONFIG lists it as an otter plugin).

``otter assign`` copies the plugin's configuration into the autograder bundle's ``otter_config.json``: the cell and
test time limits (``cell_timeout``, ``test_timeout``, ``question_timeouts`` for slow questions) that the isolated
grader (``exercises/grader``) reads. The plugin itself does nothing: grading no longer runs the submission in
otter's kernel, so there is nothing to guard there (exercises/INSTRUCTORS.md, "Grading mechanics").
"""

from __future__ import annotations

try:  # only building the exercise sets needs otter; course_lib itself does not depend on it
    from otter.plugins import AbstractOtterPlugin
except ImportError:  # pragma: no cover
    AbstractOtterPlugin = object  # type: ignore[misc,assignment]


class GradingGuard(AbstractOtterPlugin):
    """Carries the grading limits from a master's ASSIGNMENT CONFIG to the bundle; no hooks."""

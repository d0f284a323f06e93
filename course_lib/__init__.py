"""course_lib: the small library behind the diffusion-models course.

One concept per module (see docs/ARCHITECTURE.md). Import the module you need, e.g.
``from course_lib.schedules import get_schedule``.
"""

__version__ = "0.1.0"

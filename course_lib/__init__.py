"""course_lib: the small library behind the diffusion-models course.

One concept per module (see docs/ARCHITECTURE.md). Import the module you need, e.g.
``from course_lib.schedules import get_schedule``.
"""

import os as _os

# Apple laptops: an op PyTorch has not implemented for MPS then runs on the CPU with a warning naming it, instead
# of stopping the notebook. PyTorch reads this when it is first imported, so it only takes effect when course_lib
# is imported before torch (every set-up cell does); set it to 0 to get the error instead.
_os.environ.setdefault("PYTORCH_ENABLE_MPS_FALLBACK", "1")

__version__ = "0.1.0"

"""course_lib: the small library behind the diffusion-models course.

One concept per module (see docs/ARCHITECTURE.md). Import the module you need, e.g.
``from course_lib.schedules import get_schedule``.
"""

import logging as _logging
import os as _os
import warnings as _warnings

# Apple laptops: an op PyTorch has not implemented for MPS then runs on the CPU with a warning naming it, instead
# of stopping the notebook. PyTorch reads this when it is first imported, so it only takes effect when course_lib
# is imported before torch (every set-up cell does); set it to 0 to get the error instead.
_os.environ.setdefault("PYTORCH_ENABLE_MPS_FALLBACK", "1")


class _NoImageProcessorFallbackNotice(_logging.Filter):
    """transformers (5.25, what a fresh ``course_lib[chapters]`` gets) says, when torchvision is missing (a laptop;
    Colab has it), that ``CLIPImageProcessor`` falls back to its PIL version. diffusers imports that class and
    nothing here uses it (the pipelines have no feature extractor), so the notice is noise on every page that
    imports diffusers."""

    def filter(self, record: _logging.LogRecord) -> bool:
        return "requires torchvision (not installed); falling back" not in record.getMessage()


# A filter on the logger transformers will use; adding it imports nothing.
_logging.getLogger("transformers.utils.import_utils").addFilter(_NoImageProcessorFallbackNotice())
# torch 2.14's forward-mode autodiff (torch.func.jvp, page 7.2) loads decompositions written with torch.jit.script,
# which warns that torch.jit.script is deprecated: torch's own code, nothing a reader can act on.
_warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)

__version__ = "0.1.0"

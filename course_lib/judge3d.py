"""The 3-D shapes world's judge: ``judge.ShapesJudge`` with one head per attribute of a ``shapes3d`` caption.

Chapter 7's prior is prompted with the view, "a red cube, side view" (DreamFusion, Poole et al. 2022, Sec. 3.2), so
its judge reads three attributes from an image: the primitive (``shapes3d.SHAPES3D``), the colour
(``data.COLOURS``) and the view (``render.VIEWS``, which the white nose on every object's front makes visible). It is
the 2-D judge's class and body with other heads (``JUDGE3D``), trained on clean renders from random cameras
(``recipes.shapes3d_judge``), and checked the same way: near 100 % on real renders, chance on shuffled captions.
The view is the hardest attribute: its label changes at fixed angles (azimuth 45 and 135 degrees, elevation 60),
and renders a degree either side of a border look almost alike.

    judge = load_judge3d()
    adherence3d(judge, images, ["a red cube, side view", ...])  # {"shape", "colour", "view", "all"}: fractions
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from torch import Tensor

from .data import COLOURS
from .judge import JudgeConfig, ShapesJudge, adherence
from .render import VIEWS
from .shapes3d import SHAPES3D, parse_caption3d

ATTRIBUTES3D = {"shape": SHAPES3D, "colour": COLOURS, "view": VIEWS}  # a 3-D caption's three parts, head order
JUDGE3D = JudgeConfig(attributes=tuple(ATTRIBUTES3D.items()))  # the 2-D judge's sizes, 4 + 6 + 4 logits
JUDGE3D_NAME = "shapes3d_judge"  # its shipped checkpoint


def load_judge3d(name: str = JUDGE3D_NAME, directory: str | Path | None = None) -> ShapesJudge:
    """The shipped 3-D judge (SHA-256 checked; or the one in ``directory``), in eval mode; its heads are
    ``ATTRIBUTES3D``'s."""
    judge = ShapesJudge.from_pretrained(name, directory)
    if judge.attributes != ATTRIBUTES3D:
        raise ValueError(
            f"checkpoint {name!r} judges {sorted(judge.attributes)}, not the 3-D attributes "
            f"{sorted(ATTRIBUTES3D)}; for the 2-D world load ShapesJudge.from_pretrained()."
        )
    return judge


def adherence3d(judge: ShapesJudge, images: Tensor, captions: Sequence[str]) -> dict[str, float]:
    """Prompt adherence of images ``[N, 3, 32, 32]`` in [-1, 1] to 3-D captions ("a <colour> <shape>, <view> view"):
    ``{"shape", "colour", "view"}``, the fraction of images whose judged attribute matches, and ``"all"``, all three."""
    return adherence(judge, images, captions, parse=parse_caption3d)

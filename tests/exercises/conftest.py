import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # helpers.py and the sets' cases (set_<name>.py)
os.environ.setdefault("COURSE_GRADING_QUICK", "1")  # make test's mode; make test-grading sets 0 (full size)


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> Path:
    """Every set built from its master: student files under the returned folder, bundles in exercises/dist.
    Under pytest-xdist the workers of one run share a single build (the first builds it, the others reuse it)."""
    from helpers import build_fresh

    shared = os.environ.get("PYTEST_XDIST_WORKER") is not None
    return build_fresh(tmp_path_factory.getbasetemp().parent if shared else tmp_path_factory.mktemp("build"))

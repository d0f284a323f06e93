import pytest
import torch

from course_lib.profiles import default_device, get_profile, pick, seed_everything


def test_profile_from_environment(monkeypatch):
    for name in ("quick", "cpu", "gpu"):
        monkeypatch.setenv("COURSE_PROFILE", name)
        assert get_profile() == name
        assert pick(quick=1, cpu=2, gpu=3) == {"quick": 1, "cpu": 2, "gpu": 3}[name]


def test_default_profile_follows_cuda(monkeypatch):
    monkeypatch.delenv("COURSE_PROFILE", raising=False)
    assert get_profile() == ("gpu" if torch.cuda.is_available() else "cpu")


def test_unknown_profile_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "fast")
    with pytest.raises(ValueError, match="expected one of"):
        get_profile()


def test_seed_everything_and_device():
    g = seed_everything(3)
    a = torch.randn(2, generator=g)
    assert torch.equal(a, torch.randn(2, generator=torch.Generator().manual_seed(3)))
    assert isinstance(default_device(), torch.device)


def test_course_device_overrides_and_bad_values_are_explained(monkeypatch):
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert default_device() == torch.device("cpu")
    monkeypatch.setenv("COURSE_DEVICE", "gpu")
    with pytest.raises(ValueError, match="expected one of"):
        default_device()
    if not torch.cuda.is_available():
        monkeypatch.setenv("COURSE_DEVICE", "cuda")
        with pytest.raises(ValueError, match="cannot use cuda"):
            default_device()


def test_import_enables_the_mps_cpu_fallback_before_torch_loads():
    import subprocess
    import sys

    code = (
        "import os; os.environ.pop('PYTORCH_ENABLE_MPS_FALLBACK', None); import course_lib, sys; "
        "assert 'torch' not in sys.modules; print(os.environ['PYTORCH_ENABLE_MPS_FALLBACK'])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "1"

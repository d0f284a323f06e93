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

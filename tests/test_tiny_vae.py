"""Tests of course_lib.tiny_vae: its hand-written ELBO terms equal course_lib.distributions, training is
deterministic and lowers the loss, page 1's copy of the class agrees with it, and bad inputs raise."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from course_lib.distributions import bernoulli_log_likelihood, gaussian_log_likelihood, standard_normal_kl
from course_lib.tiny_vae import TinyVAE, fit, mlp

ROOT = Path(__file__).resolve().parents[1]
D = 12


def _data(n=64, seed=0):
    return torch.rand(n, D, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _moments(model, x):
    return model.encoder(x).chunk(2, dim=1)


@pytest.mark.parametrize("log_s2", [0.0, 2 * math.log(0.1)])
def test_gaussian_decoder_is_the_library_gaussian_log_likelihood(log_s2):
    torch.manual_seed(0)
    model, x = TinyVAE(D, log_s2=log_s2), _data()
    z = torch.randn(len(x), 2, generator=torch.Generator().manual_seed(1))
    expected = gaussian_log_likelihood(x, model.decoder(z), model.log_s2.expand(x.shape)).sum(1)
    torch.testing.assert_close(model.log_px_given_z(x, z), expected)


def test_bernoulli_decoder_is_the_library_bernoulli_log_likelihood():
    torch.manual_seed(0)
    model, x = TinyVAE(D, likelihood="bernoulli"), _data()
    z = torch.randn(len(x), 2, generator=torch.Generator().manual_seed(1))
    expected = bernoulli_log_likelihood((x + 1) / 2, model.decoder(z)).sum(1)
    torch.testing.assert_close(model.log_px_given_z(x, z), expected)


def test_one_image_broadcasts_against_many_codes():
    torch.manual_seed(0)
    model, x = TinyVAE(D), _data(1)
    z = torch.randn(5, 2, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(model.log_px_given_z(x, z), model.log_px_given_z(x.expand(5, D), z))


def test_neg_elbo_terms_kl_is_the_closed_form_and_recon_uses_the_reparameterized_code():
    torch.manual_seed(0)
    model, x = TinyVAE(D, latent_dim=3), _data()
    recon, kl = model.neg_elbo_terms(x, torch.Generator().manual_seed(2))
    mean, logvar = _moments(model, x)
    torch.testing.assert_close(kl, standard_normal_kl(mean, logvar).sum(1))
    eps = torch.randn(mean.shape, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(recon, -model.log_px_given_z(x, mean + torch.exp(0.5 * logvar) * eps))
    assert (kl >= 0).all()


def test_fit_is_deterministic_and_lowers_the_loss():
    x = _data(256)

    def run():
        torch.manual_seed(0)
        model = TinyVAE(D)
        losses = fit(model, lambda xb, g: sum(model.neg_elbo_terms(xb, g)).mean(), x, 150, batch_size=32)
        return model, losses

    (m1, l1), (m2, l2) = run(), run()
    assert l1 == l2 and all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))
    assert sum(l1[-20:]) / 20 < l1[0]


def test_fixed_s_stays_fixed():
    x = _data(128)
    torch.manual_seed(0)
    model = TinyVAE(D, log_s2=2 * math.log(0.1), learn_s=False)
    fit(model, lambda xb, g: sum(model.neg_elbo_terms(xb, g)).mean(), x, 20)
    assert model.log_s2.item() == pytest.approx(2 * math.log(0.1))


def test_page_one_writes_out_the_same_class():
    """Page 1 teaches TinyVAE in plain PyTorch; page 2 imports it from here: both must give the same terms."""
    cells = json.loads((ROOT / "chapters/01_vae/01_autoencoder_to_vae.ipynb").read_text())["cells"]
    source = next("".join(c["source"]) for c in cells if "".join(c["source"]).startswith("class TinyVAE"))
    namespace = {"math": math, "torch": torch, "nn": nn, "mlp": mlp, "D": D}
    exec(compile(source, "page-1 TinyVAE", "exec"), namespace)
    for kwargs in ({}, {"likelihood": "bernoulli"}, {"log_s2": 2 * math.log(0.1), "learn_s": False}):
        torch.manual_seed(0)
        page = namespace["TinyVAE"](**kwargs)
        torch.manual_seed(0)
        library = TinyVAE(D, **kwargs)
        for (k1, v1), (k2, v2) in zip(page.state_dict().items(), library.state_dict().items()):
            assert k1 == k2 and torch.equal(v1, v2), k1  # same parameters, created in the same order
        x = _data()
        for a, b in zip(
            page.neg_elbo_terms(x, torch.Generator().manual_seed(3)),
            library.neg_elbo_terms(x, torch.Generator().manual_seed(3)),
        ):
            torch.testing.assert_close(a, b)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: mlp(0, 3), "n_in"),
        (lambda: TinyVAE(D, likelihood="poisson"), "likelihood"),
        (lambda: TinyVAE(D).log_px_given_z(_data(4), torch.zeros(3, 2)), "expected x"),
        (lambda: TinyVAE(D).log_px_given_z(_data(4), torch.zeros(4, 3)), "expected x"),
        (lambda: TinyVAE(D).log_px_given_z(_data(4).long(), torch.zeros(4, 2)), "floating-point"),
        (lambda: fit(TinyVAE(D), lambda xb, g: xb.sum(), _data(), -1), "steps"),
    ],
)
def test_bad_inputs_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()

"""The digits classifier and the sample metrics: accuracy on held-out digits, Fréchet distance identities."""

import pytest
import torch

from course_lib.data import digits
from course_lib.metrics import (DigitClassifier, accuracy, frechet_distance, guidance_report, precision_recall,
                                predict, sample_report, within_class_diversity)


@pytest.fixture(scope="module")
def classifier():
    return DigitClassifier.from_pretrained()


def test_classifier_accuracy_on_held_out_digits(classifier):
    x, y = digits("test", image_size=16)
    assert accuracy(classifier, x, y) >= 0.95


def test_frechet_identities():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(500, 8, generator=g, dtype=torch.float64)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    b = torch.randn(400, 8, generator=g, dtype=torch.float64) * 2 + 1
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-6)
    shift = torch.full((8,), 0.5, dtype=torch.float64)
    assert frechet_distance(a, a + shift) == pytest.approx(8 * 0.25, rel=1e-6)  # only the means differ
    with pytest.raises(ValueError, match="feature matrices"):
        frechet_distance(a, torch.randn(10, 3))


def test_sample_report_separates_real_digits_from_noise(classifier):
    real = digits("train", image_size=16)[0][:256]
    noise = torch.randn(256, 1, 16, 16, generator=torch.Generator().manual_seed(1)).clamp(-1, 1)
    good, bad = sample_report(real, classifier), sample_report(noise, classifier)
    assert good["recognized"] > 0.95 and bad["recognized"] < 0.05
    assert good["frechet"] < 0.2 * bad["frechet"]
    assert sum(good["class_histogram"]) == round(good["recognized"] * 256)
    assert min(good["class_histogram"]) > 10  # all ten digits present
    with pytest.raises(ValueError, match=r"\[B, 1, 16, 16\]"):
        sample_report(torch.zeros(4, 1, 8, 8), classifier)


def test_near_copies_are_training_digits_not_held_out_ones():
    from course_lib.metrics import near_copy_mask, nearest_neighbour_distance

    train, test = digits("train", image_size=16)[0], digits("test", image_size=16)[0]
    assert nearest_neighbour_distance(train[:5], train).abs().max() == 0  # every image is its own neighbour
    assert not near_copy_mask(test).any()  # held-out digits are never near-copies
    g = torch.Generator().manual_seed(0)
    copies = train[:64] + 0.02 * torch.randn(64, 1, 16, 16, generator=g)  # memorised, up to a little noise
    assert near_copy_mask(copies).all()
    mixed = torch.cat([train[:10], test[:30]])
    assert near_copy_mask(mixed).tolist() == [True] * 10 + [False] * 30
    with pytest.raises(ValueError, match="factor"):
        near_copy_mask(test, factor=2.0)


def test_guidance_report_on_real_digits_with_their_true_and_shuffled_labels(classifier):
    """Real held-out digits requested as their own class: accuracy near 1; requested as a shuffled class: near 0.1.
    The other entries are the metrics it names, computed on the judge's features."""
    x, y = digits("test", image_size=16)
    x, y, ref = x[:200], y[:200], x[200:]
    _, ref_feats = predict(classifier, ref)
    report = guidance_report(x, y, classifier, ref_feats)
    assert report["accuracy"] >= 0.95
    wrong = guidance_report(x, y[torch.randperm(len(y), generator=torch.Generator().manual_seed(0))], classifier,
                            ref_feats)
    assert wrong["accuracy"] < 0.3
    _, feats = predict(classifier, x)
    assert report["FD"] == pytest.approx(frechet_distance(feats, ref_feats))
    assert {k: report[k] for k in ("precision", "recall")} == pytest.approx(precision_recall(ref_feats, feats, k=3))
    assert report["within-class diversity"] == pytest.approx(within_class_diversity(feats, y))

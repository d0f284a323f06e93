"""The digits classifier and the sample metrics: accuracy on held-out digits, Fréchet distance identities."""

import pytest
import torch

from course_lib.data import digits
from course_lib.metrics import (
    DigitClassifier,
    accuracy,
    frechet_distance,
    guidance_report,
    precision_recall,
    predict,
    sample_report,
    within_class_diversity,
)


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
    The other entries are the metrics it names, on the judge's features: precision/recall on equal-size sets (the
    reference subsampled with the seeded generator), within-class diversity grouped by the judge's prediction."""
    x, y = digits("test", image_size=16)
    x, y, ref = x[:100], y[:100], x[100:]
    _, ref_feats = predict(classifier, ref)
    report = guidance_report(x, y, classifier, ref_feats)
    assert report["accuracy"] >= 0.95
    shuffled = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(0))]
    wrong = guidance_report(x, shuffled, classifier, ref_feats)
    assert wrong["accuracy"] < 0.3
    probs, feats = predict(classifier, x)
    assert report["FD"] == pytest.approx(frechet_distance(feats, ref_feats))
    g = torch.Generator().manual_seed(0)
    ref_100 = ref_feats[torch.randperm(len(ref_feats), generator=g)[:100]]
    fake_100 = feats[torch.randperm(100, generator=g)]
    expected = precision_recall(ref_100, fake_100, k=3)
    assert {k: report[k] for k in ("precision", "recall")} == pytest.approx(expected)
    assert guidance_report(x, y, classifier, ref_feats, seed=0) == report  # the subsample is seeded
    predicted = probs[:, :10].argmax(1)
    assert report["within-class diversity"] == pytest.approx(within_class_diversity(feats, predicted))
    assert wrong["within-class diversity"] == report["within-class diversity"]  # the request does not group
    with pytest.raises(ValueError, match="labels must be"):
        guidance_report(x, y[:10], classifier, ref_feats)


class _ClusterJudge(torch.nn.Module):
    """A stand-in judge for 2-pixel images: the features are the pixels, digit 3 left of x = 0, digit 7 right."""

    def __init__(self):
        super().__init__()
        self.config = None
        self.head = torch.nn.Linear(2, 11)
        with torch.no_grad():
            self.head.weight.zero_(), self.head.bias.zero_()
            self.head.weight[3, 0], self.head.weight[7, 0] = -10.0, 10.0

    def features(self, x):
        return x.flatten(1)


def test_guidance_report_groups_diversity_by_the_judged_class_not_the_request():
    """Two tight, well-separated clusters, each sample requested as a random digit (an unguided model): grouped by
    the request, every group mixes both clusters and 'within-class' diversity is the total; grouped by the judge's
    reading it is the spread inside a cluster."""
    g = torch.Generator().manual_seed(0)
    side = torch.arange(200) % 2  # 0: digit 3, 1: digit 7
    x = torch.stack([0.8 * (2.0 * side - 1), torch.zeros(200)], 1) + 0.02 * torch.randn(200, 2, generator=g)
    images, requested = x.reshape(200, 1, 1, 2), torch.randint(0, 10, (200,), generator=g)
    report = guidance_report(images, requested, _ClusterJudge(), x + 0.02 * torch.randn(200, 2, generator=g))
    assert report["accuracy"] < 0.3
    within, by_request = within_class_diversity(x, side), within_class_diversity(x, requested)
    assert report["within-class diversity"] == pytest.approx(within, rel=1e-4)
    assert within < 0.05 and by_request > 0.6  # the request's groups mix the clusters 1.6 apart

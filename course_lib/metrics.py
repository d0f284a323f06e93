"""Measuring generated digits with a classifier: what a sample is, how sure, and how far the set is from real.

The classifier has 11 outputs: the digits 0-9 and a "not a digit" class trained on noise, mostly-noise
digits and digits whose tiles are shuffled, so a blob is not forced into a digit class.
Reported for a batch of samples (images [N, 1, 16, 16] in [-1, 1]):
- ``recognized``: fraction classified as a digit with probability >= ``threshold``;
- ``class_histogram``: counts per digit among the recognised samples (mode collapse shows here);
- ``mean_confidence``: mean max-probability over the 10 digit classes;
- ``frechet``: the Fréchet distance between Gaussians fitted to classifier features of the samples and of
  held-out real digits (Heusel et al. 2017's FID recipe, in this classifier's feature space instead of
  Inception's), with ``frechet_real`` = the same distance for real training digits, the floor for scale.

Memorisation (``near_copy_mask``): a sample is a near-copy of the training set when its nearest training digit
(Euclidean distance over pixels) is closer than ``NEAR_COPY_FACTOR`` times the median distance from a held-out
digit to its nearest training digit. For the 16x16 digits that median is 2.9; no held-out digit and 0.4 % of
the training digits (leave-one-out) fall below half of it, while a copied digit sits at distance 0.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import linalg
from torch import Tensor, nn

NOT_A_DIGIT = 10
NEAR_COPY_FACTOR = 0.5  # near-copy: closer to a training digit than half the typical held-out-to-train distance


@dataclass(frozen=True)
class ClassifierConfig:
    in_channels: int = 1
    image_size: int = 16
    width: int = 32
    feature_dim: int = 64
    num_classes: int = 11  # 10 digits + "not a digit"

    def to_dict(self) -> dict:
        return asdict(self)


class DigitClassifier(nn.Module):
    """conv(32) -> conv(64, stride 2) -> conv(64, stride 2) -> global pool -> features(64) -> logits(11)."""

    def __init__(self, config: ClassifierConfig = ClassifierConfig()):
        super().__init__()
        self.config, w = config, config.width
        self.body = nn.Sequential(
            nn.Conv2d(config.in_channels, w, 3, padding=1),
            nn.GroupNorm(8, w),
            nn.SiLU(),
            nn.Conv2d(w, 2 * w, 3, stride=2, padding=1),
            nn.GroupNorm(8, 2 * w),
            nn.SiLU(),
            nn.Conv2d(2 * w, 2 * w, 3, stride=2, padding=1),
            nn.GroupNorm(8, 2 * w),
            nn.SiLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(2 * w, config.feature_dim),
            nn.SiLU(),
        )
        self.head = nn.Linear(config.feature_dim, config.num_classes)

    def features(self, x: Tensor) -> Tensor:
        """Penultimate features [B, feature_dim] used for the Fréchet distance."""
        c = self.config
        if x.ndim != 4 or x.shape[1:] != (c.in_channels, c.image_size, c.image_size):
            raise ValueError(
                f"expected images [B, {c.in_channels}, {c.image_size}, {c.image_size}] in [-1, 1], "
                f"got {tuple(x.shape)}; resize with F.interpolate first."
            )
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))

    @classmethod
    def from_pretrained(cls, name: str = "digit_classifier") -> "DigitClassifier":
        from .checkpoints import load_verified

        state, entry = load_verified(name, expected_model="classifier")
        model = cls(ClassifierConfig(**entry["config"]))
        model.load_state_dict(state)
        return model.eval()


def negatives(x: Tensor, generator: torch.Generator) -> Tensor:
    """Non-digit images for the reject class, as many as ``x``: noise, mostly-noise digits, scrambled digits.

    Scrambled digits (their 4x4 tiles shuffled) keep the stroke statistics but lose the shape, so the
    classifier cannot reject by brightness alone.
    """
    n, c, h, w = x.shape
    kind = torch.randint(0, 3, (n, 1, 1, 1), generator=generator)
    noise = torch.randn(x.shape, generator=generator)
    pure = (noise * torch.rand(n, 1, 1, 1, generator=generator) * 1.5).clamp(-1, 1)
    a = torch.rand(n, 1, 1, 1, generator=generator) * 0.25  # keep at most a quarter of the signal's variance
    noisy = (a.sqrt() * x + (1 - a).sqrt() * noise).clamp(-1, 1)
    tiles = x.reshape(n, c, h // 4, 4, w // 4, 4).permute(0, 1, 2, 4, 3, 5).reshape(n, c, -1, 4, 4)
    tiles = tiles[:, :, torch.randperm(tiles.shape[2], generator=generator)]
    scrambled = tiles.reshape(n, c, h // 4, w // 4, 4, 4).permute(0, 1, 2, 4, 3, 5).reshape(n, c, h, w)
    return torch.where(kind == 0, pure, torch.where(kind == 1, noisy, scrambled))


def classifier_loss_fn(generator: torch.Generator):
    """``loss_fn(model, (x, y))``: cross-entropy on the batch plus an equal number of labelled negatives."""

    def loss_fn(model, batch):
        x, y = batch
        neg = negatives(x.cpu(), generator).to(x.device)
        shift = torch.randint(-1, 2, (2,), generator=generator).tolist()  # small translations: robustness
        x = torch.roll(x, shifts=shift, dims=(2, 3))
        logits = model(torch.cat([x, neg]))
        target = torch.cat([y, torch.full_like(y, NOT_A_DIGIT)])
        return F.cross_entropy(logits, target)

    return loss_fn


@torch.no_grad()
def predict(classifier: nn.Module, images: Tensor, batch_size: int = 512) -> tuple[Tensor, Tensor]:
    """Return (probabilities [N, 11], features [N, F]) on the CPU."""
    device = next(classifier.parameters()).device
    probs, feats = [], []
    for chunk in images.split(batch_size):
        f = classifier.features(chunk.to(device).float().clamp(-1, 1))
        feats.append(f.cpu())
        probs.append(F.softmax(classifier.head(f), dim=1).cpu())
    return torch.cat(probs), torch.cat(feats)


def accuracy(classifier: nn.Module, images: Tensor, labels: Tensor) -> float:
    """Fraction of ``images`` whose most likely class (of 11) is ``labels``."""
    probs, _ = predict(classifier, images)
    return (probs.argmax(1) == labels.cpu()).float().mean().item()


def frechet_distance(feats_a: Tensor, feats_b: Tensor) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) between Gaussians fitted to two feature sets [N, F]."""
    a, b = feats_a.double().numpy(), feats_b.double().numpy()
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(f"need two feature matrices [N>=2, F] with equal F, got {a.shape} and {b.shape}.")
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s_a @ s_b)
    covmean = covmean.real if np.iscomplexobj(covmean) else covmean
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a + s_b - 2 * covmean))


def sample_report(
    images: Tensor,
    classifier: nn.Module | None = None,
    *,
    reference: Tensor | None = None,
    real: Tensor | None = None,
    threshold: float = 0.5,
    seed: int = 0,
) -> dict:
    """Measure a batch of generated digits.

    Args:
        images: samples [N, 1, 16, 16] in [-1, 1] (values outside are clamped for the classifier).
        classifier: defaults to the shipped ``DigitClassifier.from_pretrained()``.
        reference: held-out real digits for the Fréchet distance (default: the test split).
        real: real digits for the real-vs-real baseline (default: N random training digits).
        threshold: minimum probability for a sample to count as a recognised digit.
    Returns:
        dict with n, recognized, mean_confidence, class_histogram (10 counts), frechet, frechet_real.
    """
    from .data import digits

    if images.ndim != 4 or images.shape[0] < 2:
        raise ValueError(f"images must be [N >= 2, C, H, W], got {tuple(images.shape)}.")
    classifier = classifier if classifier is not None else DigitClassifier.from_pretrained()
    size = classifier.config.image_size
    if reference is None:
        reference = digits("test", image_size=size)[0]
    if real is None:
        train_x = digits("train", image_size=size)[0]
        idx = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(seed))[: len(images)]
        real = train_x[idx]
    probs, feats = predict(classifier, images)
    _, ref_feats = predict(classifier, reference)
    _, real_feats = predict(classifier, real)
    conf, cls = probs.max(1)
    ok = (cls != NOT_A_DIGIT) & (conf >= threshold)
    return {
        "n": len(images),
        "recognized": ok.float().mean().item(),
        "mean_confidence": probs[:, :NOT_A_DIGIT].max(1).values.mean().item(),
        "class_histogram": torch.bincount(cls[ok], minlength=11)[:10].tolist(),
        "frechet": frechet_distance(feats, ref_feats),
        "frechet_real": frechet_distance(real_feats, ref_feats),
    }


def precision_recall(real_feats: Tensor, fake_feats: Tensor, k: int = 3) -> dict:
    """Improved precision and recall (Kynkaanniemi et al. 2019) of two feature sets [N, F] and [M, F].

    Each set's manifold is the union of balls around its points, each with the radius of that point's k-th
    nearest neighbour within the set. Precision: the fraction of generated points inside the real manifold
    (fidelity). Recall: the fraction of real points inside the generated manifold (diversity, coverage).
    Both lie in [0, 1]; a mode-dropping generator keeps its precision and loses recall.
    """
    a, b = real_feats.detach().double().cpu(), fake_feats.detach().double().cpu()
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"need two feature matrices [N, F] with equal F, got {tuple(a.shape)} and {tuple(b.shape)}.")
    if not 1 <= k < min(len(a), len(b)):
        raise ValueError(f"k must lie in 1 ... {min(len(a), len(b)) - 1} (fewer than either set's size), got {k}.")

    def radii(x):  # distance to the k-th nearest other point (column 0 is the point itself)
        return torch.cdist(x, x).kthvalue(k + 1, dim=1).values

    def inside(points, centres, r):
        return (torch.cdist(points, centres) <= r[None, :]).any(1).double().mean().item()

    return {"precision": inside(b, a, radii(a)), "recall": inside(a, b, radii(b))}


def within_class_diversity(feats: Tensor, labels: Tensor) -> float:
    """Mean pairwise feature distance between samples of the same label, averaged over labels with >= 2 samples."""
    feats, labels = feats.detach().double().cpu(), labels.cpu()
    per_class = []
    for c in labels.unique():
        f = feats[labels == c]
        if len(f) >= 2:
            d = torch.cdist(f, f)
            per_class.append(d.sum() / (len(f) * (len(f) - 1)))
    if not per_class:
        raise ValueError("within_class_diversity needs at least two samples of some label.")
    return torch.stack(per_class).mean().item()


def guidance_report(
    images: Tensor, labels: Tensor, judge: nn.Module, reference_feats: Tensor, k: int = 3, *, seed: int = 0
) -> dict:
    """What chapter 5 measures of samples drawn for requested classes, judged by a clean classifier.

    Two choices keep the entries comparable across guidance scales:

    - **Within-class diversity groups the samples by the judge's predicted digit** (argmax over the ten digits, as
      ``accuracy`` reads them), not by the requested one. Grouped by the request, an unguided model's groups mix
      all digits, so at s = 0 the entry would be the batch's total diversity and its fall with s partly a fall in
      accuracy. Predicted groups keep all N samples at every scale; grouping only the correctly classified ones
      would leave about one sample per digit at s = 0 (accuracy ~0.1), too few to measure.
    - **Precision and recall compare sets of equal size**, as Kynkaanniemi et al. (2019) do: each k-NN radius
      depends on how many points share the space, so the larger set (usually the reference) is subsampled to the
      smaller one's size, without replacement, with a ``torch.Generator`` seeded by ``seed``. FD uses every feature.

    Args:
        images: samples [N, C, H, W] in [-1, 1]; labels: the requested classes [N] (int64).
        judge: the classifier of clean images (``DigitClassifier``); its features define FD, precision and recall.
        reference_feats: the judge's features of real held-out images [M, D].
        k: the neighbour whose distance is a point's radius for precision and recall.
        seed: seeds the subsample that equalises the two sets for precision and recall.
    Returns: {"accuracy": fraction judged as the requested class (fidelity), "FD": Frechet distance to all the
    reference features, "precision", "recall" (Kynkaanniemi et al. 2019, k neighbours, min(N, M) points per set),
    "within-class diversity": mean feature distance between two samples the judge reads as the same digit}.
    """
    if labels.shape != (len(images),):
        raise ValueError(
            f"labels must be [N] = [{len(images)}] requested classes, one per image, got {tuple(labels.shape)}."
        )
    probs, feats = predict(judge, images)
    predicted = probs[:, :NOT_A_DIGIT].argmax(1)
    n = min(len(feats), len(reference_feats))
    g = torch.Generator().manual_seed(seed)
    ref_pr = reference_feats[torch.randperm(len(reference_feats), generator=g)[:n]]
    fake_pr = feats[torch.randperm(len(feats), generator=g)[:n]]
    return {
        "accuracy": (predicted == labels.cpu()).float().mean().item(),
        "FD": frechet_distance(feats, reference_feats),
        **precision_recall(ref_pr, fake_pr, k=k),
        "within-class diversity": within_class_diversity(feats, predicted),
    }


def nearest_neighbour_distance(x: Tensor, bank: Tensor) -> Tensor:
    """Euclidean distance from each image of ``x`` [N, ...] to its nearest image in ``bank`` [M, ...]: float64 [N]."""
    if x.ndim < 2 or bank.ndim != x.ndim or x.shape[1:] != bank.shape[1:]:
        raise ValueError(
            f"need two image batches [N, ...] of the same image shape, got {tuple(x.shape)} and {tuple(bank.shape)}."
        )
    a, b = x.detach().flatten(1).double().cpu(), bank.detach().flatten(1).double().cpu()
    return torch.cat([torch.cdist(chunk, b).min(1).values for chunk in a.split(512)])


def near_copy_mask(
    samples: Tensor, train: Tensor | None = None, reference: Tensor | None = None, *, factor: float = NEAR_COPY_FACTOR
) -> Tensor:
    """Which samples are near-copies of training images (memorisation), as a bool tensor [N].

    A sample counts as a near-copy when its nearest-neighbour distance to ``train`` is below ``factor`` times
    the median nearest-neighbour distance from ``reference`` (held-out real images) to ``train``: closer to a
    training image than held-out data of the same distribution ever are.

    Args:
        samples: images [N, 1, 16, 16] in [-1, 1] (clamped to that range before measuring).
        train: the training images (default: the 16x16 training digits).
        reference: held-out real images that set the scale (default: the 16x16 test digits).
        factor: the fraction of the typical held-out distance below which a sample is a copy, in (0, 1].
    """
    from .data import digits

    if not 0 < factor <= 1:
        raise ValueError(f"factor must lie in (0, 1], got {factor!r}.")
    size = samples.shape[-1]
    train = digits("train", image_size=size)[0] if train is None else train
    reference = digits("test", image_size=size)[0] if reference is None else reference
    scale = nearest_neighbour_distance(reference, train).median()
    return nearest_neighbour_distance(samples.clamp(-1, 1), train) < factor * scale

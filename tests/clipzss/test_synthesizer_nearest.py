"""``label_centroids`` is the mean of R nearest-upsampled by ``F.interpolate(mode="nearest")``, for every size pair.

torch's nearest rule computes ``floor(y * (h / H))`` with a float scale, which differs from the exact
``floor(y * h / H)`` for some sizes that are not integer multiples (e.g. 2 -> 82, 3 -> 123).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from clipzss.synthesizer import _nearest_source_index, label_centroids


def _reference_centroids(features: torch.Tensor, labels: torch.Tensor, num_labels: int) -> torch.Tensor:
    """Mean of the explicitly upsampled features over every label (written from Eq. 5, not from the package).

    Upsampled in float32, as the package's features are: torch's nearest indices depend on the dtype's scale.
    """
    up = F.interpolate(features.float(), size=labels.shape[-2:], mode="nearest").double()
    rows = up.permute(0, 2, 3, 1).reshape(-1, features.shape[1])
    flat = labels.reshape(-1)
    out = torch.zeros(num_labels, features.shape[1], dtype=torch.float64)
    for label in range(num_labels):
        if (flat == label).any():
            out[label] = rows[flat == label].mean(0)
    return out


def test_source_index_is_torchs_nearest_for_many_sizes() -> None:
    mismatched = []
    for size_in in range(1, 48):
        for size_out in range(1, 260):
            ref = F.interpolate(
                torch.arange(size_in, dtype=torch.float32).view(1, 1, size_in, 1), size=(size_out, 1), mode="nearest"
            ).view(size_out)
            if not torch.equal(_nearest_source_index(size_in, size_out, torch.device("cpu")), ref.long()):
                mismatched.append((size_in, size_out))
    assert not mismatched, mismatched[:10]


@pytest.mark.parametrize(("grid", "size"), [((2, 3), (82, 123)), ((3, 5), (123, 141)), ((7, 9), (30, 50))])
def test_centroids_equal_explicit_nearest_upsampling(grid: tuple[int, int], size: tuple[int, int]) -> None:
    gen = torch.Generator().manual_seed(0)
    features = torch.randn(2, 4, *grid, generator=gen)
    labels = torch.randint(-1, 5, (2, *size), generator=gen)
    centroids, present = label_centroids(features, labels, num_labels=5, ignore_index=-1)
    ref = _reference_centroids(features, labels, 5)
    torch.testing.assert_close(centroids.double(), ref, rtol=1e-5, atol=1e-6)
    assert present.tolist() == [bool((labels == k).any()) for k in range(5)]

"""PLM pseudo labels: unannotated mask, mask fusion (CLIP-ZSS paper Sec. 3.3) and fused labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from clipzss.config import PLMConfig
from clipzss.model import infer_pad_mask
from clipzss.pseudo_labels import PseudoLabeler, fuse_clusters, fuse_labels, token_mask, unannotated_mask

IGNORE = -1  # compact and fused labels (clipzss.losses.IGNORE_LABEL); the dataset 255 is read only at the input


def _unit_vectors(n: int, d: int, seed: int, spread: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    protos = rng.normal(size=(max(n // 3, 1), d))
    x = protos[rng.integers(0, len(protos), n)] + spread * rng.normal(size=(n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _check_partition(groups: np.ndarray, n: int) -> None:
    assert groups.shape == (n,)
    assert (groups >= 0).all()
    assert sorted(set(groups.tolist())) == list(range(groups.max() + 1 if n else 0))


@given(
    n=st.integers(1, 24),
    seed=st.integers(0, 10_000),
    spread=st.floats(0.05, 1.5),
    thr=st.floats(0.0, 0.99),
)
def test_each_seed_is_used_exactly_once(n: int, seed: int, spread: float, thr: float) -> None:
    x = _unit_vectors(n, 8, seed, spread)
    sim = x @ x.T
    groups = fuse_clusters(sim, thr, "one_hop")
    _check_partition(groups, n)
    # one-hop: a merged group has a root whose similarity to every other member is above the threshold
    for g in range(groups.max() + 1):
        members = np.nonzero(groups == g)[0]
        if len(members) > 1:
            sub = sim[np.ix_(members, members)] > thr
            np.fill_diagonal(sub, True)
            assert sub.all(1).any()


def test_one_hop_rule_on_a_hand_made_matrix() -> None:
    sim = np.array(
        [
            [1.0, 0.95, 0.85, 0.1],
            [0.95, 1.0, 0.2, 0.1],
            [0.85, 0.2, 1.0, 0.82],
            [0.1, 0.1, 0.82, 1.0],
        ]
    )
    # max 0.95 at row 0: row 0 takes 1 and 2 (> 0.8); 3 is left alone although sim[2, 3] > 0.8 (not transitive)
    assert fuse_clusters(sim, 0.8).tolist() == [0, 0, 0, 1]
    assert fuse_clusters(sim, 0.8, "transitive").tolist() == [0, 0, 0, 0]
    assert fuse_clusters(sim, 0.9).tolist() == [0, 0, 1, 2]
    assert fuse_clusters(sim, 0.99).tolist() == [0, 1, 2, 3]  # nothing above: every seed its own class
    assert fuse_clusters(sim, -1.0).tolist() == [0, 0, 0, 0]
    assert fuse_clusters(np.zeros((0, 0)), 0.8).tolist() == []
    with pytest.raises(ValueError):
        fuse_clusters(sim, 0.8, "greedy")


@given(n=st.integers(1, 20), seed=st.integers(0, 10_000), spread=st.floats(0.05, 1.5))
def test_higher_threshold_never_yields_fewer_classes_transitive(n: int, seed: int, spread: float) -> None:
    sim = (x := _unit_vectors(n, 6, seed, spread)) @ x.T
    groups = [fuse_clusters(sim, t, "transitive") for t in np.linspace(-1.0, 1.0, 21)]
    for g in groups:
        _check_partition(g, n)  # ids 0..G-1 without renumbering
    counts = [g.max() + 1 for g in groups]
    assert all(a <= b for a, b in zip(counts, counts[1:], strict=False))


@given(seed=st.integers(0, 10_000), k=st.integers(1, 6), per=st.integers(1, 5))
def test_higher_threshold_never_yields_fewer_classes_one_hop_on_separated_clusters(seed: int, k: int, per: int) -> None:
    # Token clusters as K-means gives them: a few semantic groups, tight inside, far apart.
    rng = np.random.default_rng(seed)
    protos = np.linalg.qr(rng.normal(size=(16, 16)))[0][:k]
    x = np.repeat(protos, per, 0) + 0.05 * rng.normal(size=(k * per, 16))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    sim = x @ x.T
    counts = [fuse_clusters(sim, t).max() + 1 for t in (0.3, 0.5, 0.6, 0.7, 0.8, 0.9)]
    assert all(a <= b for a, b in zip(counts, counts[1:], strict=False))
    assert counts[1] == k


def test_one_hop_rule_is_not_monotone_in_general() -> None:
    """Documented property of the paper's rule: raising lambda can merge *more* (see the README)."""
    gram = np.eye(5)
    for (a, b), v in {
        (0, 1): 0.95, (0, 2): 0.75, (2, 3): 0.9, (2, 4): 0.9, (3, 4): 0.65,
        (0, 3): 0.6, (0, 4): 0.6, (1, 2): 0.75, (1, 3): 0.6, (1, 4): 0.6,
    }.items():  # fmt: skip
        gram[a, b] = gram[b, a] = v
    x = np.linalg.cholesky(gram)  # five real unit vectors with these cosines
    sim = x @ x.T
    assert fuse_clusters(sim, 0.7).max() + 1 == 3  # {0,1,2} {3} {4}
    assert fuse_clusters(sim, 0.8).max() + 1 == 2  # {0,1} {2,3,4}
    assert fuse_clusters(sim, 0.7, "transitive").max() + 1 <= fuse_clusters(sim, 0.8, "transitive").max() + 1


def test_unannotated_and_token_masks() -> None:
    label = torch.full((1, 8, 8), 3)
    label[0, :, 4:] = IGNORE
    pad = torch.zeros(1, 8, 8, dtype=torch.bool)
    pad[0, 6:] = True
    m = unannotated_mask(label, pad)
    assert m.sum() == 4 * 6
    tok = token_mask(m, (2, 2))
    # bottom-right token: 8 of its 16 pixels are unannotated, not a majority; nearest samples pixel (4, 4)
    assert tok.tolist() == [[[False, True], [False, False]]]
    assert token_mask(m, (2, 2), "nearest").tolist() == [[[False, True], [False, True]]]
    with pytest.raises(ValueError):
        token_mask(m, (2, 2), "bilinear")


def test_infer_pad_mask_finds_trailing_black_ignore_rows_and_columns() -> None:
    img = torch.full((1, 3, 6, 6), 100, dtype=torch.uint8)
    label = torch.zeros(1, 6, 6, dtype=torch.long)
    img[..., 4:, :] = 0
    label[:, 4:, :] = IGNORE
    img[..., :, 5:] = 0
    label[:, :, 5:] = IGNORE
    img[..., 1, :] = 0  # a black ignore row inside the image is not padding
    label[:, 1, :] = IGNORE
    pad = infer_pad_mask(img, label)
    assert pad[0, 4:].all() and pad[0, :, 5].all()
    assert not pad[0, :4, :5].any()


def _labeler_inputs(b: int = 3, grid: int = 8, d: int = 16, size: int = 64):
    g = torch.Generator().manual_seed(0)
    # dense tokens: left half "grass", right half "sky", with noise
    base = F.normalize(torch.randn(2, d, generator=g), dim=-1)
    dense = torch.empty(b, d, grid, grid)
    dense[..., : grid // 2] = base[0][None, :, None, None]
    dense[..., grid // 2 :] = base[1][None, :, None, None]
    dense = dense + 0.05 * torch.randn(b, d, grid, grid, generator=g)
    label = torch.full((b, size, size), IGNORE, dtype=torch.long)
    return dense, label


def test_fused_labels_all_unannotated_all_annotated_and_padding() -> None:
    dense, label = _labeler_inputs()
    label[0] = 1  # image 0: all annotated (seen class 1)
    label[1, :16] = 0  # image 1: partly annotated
    pad = torch.zeros_like(label, dtype=torch.bool)
    pad[2, :, 48:] = True  # image 2: all unannotated, right quarter is padding
    out = PseudoLabeler(PLMConfig(windows=(1, 3)))(dense, label, num_seen=4, pad_mask=pad)
    fused = out.fused
    assert torch.equal(fused[0], label[0])  # nothing to pseudo-label
    assert (fused[1, :16] == 0).all()  # seen pixels kept
    assert (fused[1, 16:] >= 4).all()  # every unannotated pixel got a pseudo class
    assert (fused[2][pad[2]] == IGNORE).all()  # padding never pseudo-labelled
    assert (fused[2][~pad[2]] >= 4).all()
    # pseudo ids are contiguous after Ns and distinct across images
    pseudo = sorted(fused[(fused >= 4) & (fused != IGNORE)].unique().tolist())
    assert pseudo == list(range(4, 4 + out.num_pseudo))
    ids1 = set(fused[1][fused[1] >= 4].tolist())
    ids2 = set(fused[2][(fused[2] >= 4) & ~pad[2]].tolist())
    assert not ids1 & ids2
    # the two halves of the tokens are two semantic regions: lambda 0.8 fuses each half into one class
    assert len(ids1) == 2 and len(ids2) == 2


def test_higher_threshold_keeps_more_pseudo_classes_on_real_tokens() -> None:
    dense, label = _labeler_inputs(b=2)
    dense = dense + 0.3 * torch.randn_like(dense)
    counts = [
        PseudoLabeler(PLMConfig(windows=(1, 3), fusion_threshold=t))(dense, label, num_seen=2).num_pseudo
        for t in (0.5, 0.7, 0.8, 0.9, 0.99)
    ]
    assert counts == sorted(counts)
    assert counts[0] < counts[-1]  # the threshold matters on these tokens


def test_min_pseudo_tokens_drops_small_clusters() -> None:
    dense, label = _labeler_inputs(b=2)
    dense = dense + 0.3 * torch.randn(dense.shape, generator=torch.Generator().manual_seed(1))
    every = PseudoLabeler(PLMConfig(windows=(1, 3), fusion_threshold=0.99))(dense, label, num_seen=2)
    large = PseudoLabeler(PLMConfig(windows=(1, 3), fusion_threshold=0.99, min_pseudo_tokens=4))(
        dense, label, num_seen=2
    )
    assert 0 < large.num_pseudo < every.num_pseudo
    # every kept class owns at least 4 tokens; the tokens of dropped clusters stay unlabelled (-1)
    ids, counts = large.token_labels[large.token_labels >= 0].unique(return_counts=True)
    assert len(ids) == large.num_pseudo and (counts >= 4).all()
    assert (large.token_labels < 0).any() and not (every.token_labels < 0).any()


def test_fuse_labels_without_pseudo_tokens() -> None:
    label = torch.tensor([[[0, 1], [IGNORE, IGNORE]]])
    fused, k = fuse_labels(label, torch.full((1, 1, 1), -1), label == IGNORE, num_seen=2)
    assert k == 0 and torch.equal(fused, label)


@pytest.mark.parametrize("backend", ["auto", "torch", "faiss"])
def test_labeler_backends_agree(backend: str) -> None:
    dense, label = _labeler_inputs(b=2)
    dense = dense + 0.3 * torch.randn_like(dense)
    # scikit-learn is the independent reference; "auto" checks the default dispatch, "torch" the batched path.
    ref = PseudoLabeler(PLMConfig(windows=(1, 3), kmeans_backend="sklearn"))(dense, label, num_seen=2)
    out = PseudoLabeler(PLMConfig(windows=(1, 3), kmeans_backend=backend))(dense, label, num_seen=2)
    assert ref.num_pseudo > 1  # several clusters to agree on
    assert torch.equal(out.fused, ref.fused)

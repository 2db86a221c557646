"""Multi-scale seeds and the three K-means backends (CLIP-ZSS paper Sec. 3.3, Eq. 4)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from clipzss.kmeans import batched_kmeans, kmeans, multiscale_seeds, seed_grid_counts


@pytest.mark.parametrize(
    ("grid", "mode", "expected"),
    [
        (32, "lattice", [64, 16]),  # the paper's 512 crop with ViT-B/16: 64 + 16 seeds
        (32, "adaptive", [64, 16]),
        (16, "lattice", [16, 4]),
        (14, "lattice", [9, 1]),  # a 224 input
        (8, "lattice", [4, 1]),
        (5, "lattice", [1, 0]),  # window 7 does not fit
    ],
)
def test_seed_counts_per_grid(grid: int, mode: str, expected: list[int]) -> None:
    assert seed_grid_counts(grid, grid, (3, 7), mode) == expected
    tokens = torch.randn(2, 8, grid, grid)
    seeds, keep = multiscale_seeds(tokens, windows=(3, 7), mode=mode)
    assert seeds.shape == (2, sum(expected), 8)
    assert keep.all()


def test_seeds_are_window_means_at_lattice_points() -> None:
    tokens = torch.randn(1, 6, 32, 32)
    unit = F.normalize(tokens, dim=1)
    seeds, _ = multiscale_seeds(tokens, windows=(3, 7))
    # first scale: window 3, stride 4; seed (i, j) averages rows 4i..4i+2, cols 4j..4j+2
    i, j = 2, 5
    expect = F.normalize(unit[0, :, 4 * i : 4 * i + 3, 4 * j : 4 * j + 3].mean((1, 2)), dim=0)
    torch.testing.assert_close(seeds[0, i * 8 + j], expect)
    # second scale: window 7, stride 8
    i, j = 3, 1
    expect = F.normalize(unit[0, :, 8 * i : 8 * i + 7, 8 * j : 8 * j + 7].mean((1, 2)), dim=0)
    torch.testing.assert_close(seeds[0, 64 + i * 4 + j], expect)


def test_seed_keep_rules() -> None:
    tokens = torch.randn(1, 4, 32, 32)
    mask = torch.zeros(1, 32, 32, dtype=torch.bool)
    mask[0, :16] = True  # top half unannotated
    _, center = multiscale_seeds(tokens, mask, keep="center")
    _, majority = multiscale_seeds(tokens, mask, keep="majority")
    _, every = multiscale_seeds(tokens, mask, keep="all")
    # window-3 centres are rows 1, 5, 9, 13 (kept) and 17.. (dropped): 4 x 8 = 32; window-7 centres 3, 11: 2 x 4
    assert int(center.sum()) == 32 + 8
    assert int(majority.sum()) == 32 + 8
    assert bool(every.all())


def _clustered(b: int = 3, n: int = 300, d: int = 32, protos: int = 6, k: int = 8, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    centres = F.normalize(torch.randn(protos, d, generator=g), dim=-1)
    z = torch.randint(0, protos, (b, n), generator=g)
    x = F.normalize(centres[z] + 0.25 * torch.randn(b, n, d, generator=g), dim=-1)
    # seeds: random points of each image (as the window means would be), no empty clusters on this data
    idx = torch.stack([torch.randperm(n, generator=g)[:k] for _ in range(b)])
    seeds = torch.gather(x, 1, idx[..., None].expand(-1, -1, d))
    return x, seeds


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_backends_agree_given_the_same_seeds(metric: str) -> None:
    x, seeds = _clustered()
    ref = batched_kmeans(x, seeds, num_iters=20, metric=metric)
    assert (ref.counts > 0).all()
    for backend in ("faiss", "sklearn"):
        out = kmeans(x, seeds, num_iters=20, metric=metric, backend=backend)
        assert torch.equal(out.assign, ref.assign), backend
        torch.testing.assert_close(out.centroids, ref.centroids, atol=1e-4, rtol=1e-4)
        assert torch.equal(out.counts, ref.counts)


def test_backends_agree_with_masks_and_per_image_seed_counts() -> None:
    x, seeds = _clustered(b=3, n=200, k=8, seed=1)
    x_mask = torch.ones(3, 200, dtype=torch.bool)
    x_mask[1, 120:] = False
    x_mask[2, ::3] = False
    seed_mask = torch.ones(3, 8, dtype=torch.bool)
    seed_mask[0, 5:] = False  # image 0 has 5 seeds, image 2 has 6
    seed_mask[2, [1, 4]] = False
    ref = batched_kmeans(x, seeds, x_mask=x_mask, seed_mask=seed_mask)
    assert (ref.assign[~x_mask] == -1).all()
    assert not seed_mask.gather(1, ref.assign.clamp_min(0))[x_mask].eq(False).any()
    for backend in ("faiss", "sklearn"):
        out = kmeans(x, seeds, x_mask=x_mask, seed_mask=seed_mask, backend=backend)
        assert torch.equal(out.assign, ref.assign), backend
    # the batch equals one call per image
    for i in range(3):
        one = batched_kmeans(x[i : i + 1, x_mask[i]], seeds[i : i + 1, seed_mask[i]])
        cols = seed_mask[i].nonzero()[:, 0]
        assert torch.equal(cols[one.assign[0]], ref.assign[i, x_mask[i]])


def test_kmeans_empty_inputs() -> None:
    x = torch.randn(2, 10, 4)
    none = batched_kmeans(x, torch.randn(2, 0, 4))
    assert (none.assign == -1).all()
    seed_mask = torch.tensor([[True, True], [False, False]])
    out = batched_kmeans(x, torch.randn(2, 2, 4), seed_mask=seed_mask)
    assert (out.assign[0] >= 0).all() and (out.assign[1] == -1).all()
    assert out.counts[1].sum() == 0
    with pytest.raises(ValueError):
        batched_kmeans(x, torch.randn(2, 2, 4), metric="manhattan")  # type: ignore[arg-type]


def test_kmeans_reaches_a_fixed_point() -> None:
    x, seeds = _clustered(seed=3)
    out = batched_kmeans(x, seeds, num_iters=50)
    # one more assignment step from the final centroids changes nothing
    again = batched_kmeans(x, out.centroids, num_iters=1)
    assert torch.equal(again.assign, out.assign)
    assert out.num_iters < 50


def test_faiss_gpu_index_only_with_a_gpu_build(monkeypatch) -> None:
    from clipzss import kmeans as km

    x, seeds = _clustered(b=1, n=64, k=4)
    if not km.faiss_gpu_available():  # faiss-cpu (CI): the GPU index is refused with the fix in the message
        with pytest.raises(RuntimeError, match="faiss-gpu"):
            km.faiss_kmeans(x[0], seeds[0], gpu=True)
    # CPU tensors never ask for the GPU index, whatever faiss build is installed
    calls = []
    real = km.faiss_kmeans
    monkeypatch.setattr(km, "faiss_kmeans", lambda *a, **kw: calls.append(kw["gpu"]) or real(*a, **kw))
    km.kmeans(x, seeds, backend="faiss")
    assert calls == [False]


def test_missing_faiss_names_the_install(monkeypatch) -> None:
    import builtins

    from clipzss import kmeans as km

    real_import = builtins.__import__

    def no_faiss(name, *args, **kwargs):
        if name == "faiss":
            raise ImportError("No module named 'faiss'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_faiss)
    x, seeds = _clustered(b=1, n=64, k=4)
    with pytest.raises(RuntimeError, match=r"clipzss\[faiss\]"):
        km.kmeans(x, seeds, backend="faiss")
    assert not km.faiss_gpu_available()
    assert km.kmeans(x, seeds, backend="torch").assign.shape == (1, 64)  # the default needs no faiss

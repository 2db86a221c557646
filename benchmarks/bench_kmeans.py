"""Multi-scale K-means of the CLIP-ZSS PLM: batched torch vs faiss vs per-image scikit-learn, same seeds.

The issue's case: a batch of 16 images, 32x32 = 1024 CLIP tokens of 512 dims each, the multi-scale seeds of windows 3
and 7 kept on the unannotated tokens (up to 64 + 16 = 80 per image), at most 20 Lloyd iterations with the common
fixed-point stop. Tokens are synthetic but CLIP-like: each image is a Voronoi partition of the grid into 6-12
regions, each region one of 20 semantic directions, plus a smooth positional component and per-token noise; 30-100 %
of each image is unannotated (886 seeds kept in all, 5-13 iterations per image to the fixed point).

Providers: ``torch`` (the default path, :func:`clipzss.kmeans.batched_kmeans`: whole batch at once), ``faiss``
(per image, ``faiss.Clustering`` with the seeds as initial centroids) and ``reference`` = per-image scikit-learn
(``KMeans(init=seeds, n_init=1)``; for the cosine metric one ``max_iter=1`` fit per iteration with re-normalised
centroids, since scikit-learn has no spherical K-means). Every provider is checked to give the same assignments as
scikit-learn before it is timed. Rows go to ``benchmarks/results/kmeans.json`` with the speed-up over scikit-learn.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from clipzss.kmeans import kmeans, multiscale_seeds

HAS_CUDA = torch.cuda.is_available()
B, GRID, DIM, ITERS = 16, 32, 512, 20


def clip_like_batch(
    seed: int = 0, device: str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x (B, N, D), x_mask (B, N), seeds (B, 80, D), seed_mask (B, 80)) as the PLM builds them."""
    g = torch.Generator().manual_seed(seed)
    protos = F.normalize(torch.randn(20, DIM, generator=g), dim=-1)
    ys, xs = torch.meshgrid(torch.arange(GRID), torch.arange(GRID), indexing="ij")
    # A smooth positional component (random Fourier features of the token position), as CLIP's dense tokens carry
    # position: neighbouring seeds of one region differ, so no cluster empties (the libraries treat empty clusters
    # differently, and the point is to compare equal assignments).
    freqs = torch.randn(64, 2, generator=g) * 0.25
    phase = torch.rand(64, generator=g) * 6.283
    pos = torch.cos(ys[..., None] * freqs[:, 0] + xs[..., None] * freqs[:, 1] + phase)
    pos = F.normalize(pos @ (torch.randn(64, DIM, generator=g) / 8), dim=-1)
    tokens, masks = [], []
    for i in range(B):
        k = int(torch.randint(6, 13, (1,), generator=g))
        centres = torch.rand(k, 2, generator=g) * GRID
        dist = (ys[..., None] - centres[:, 0]) ** 2 + (xs[..., None] - centres[:, 1]) ** 2
        region = dist.argmin(-1)
        proto = protos[torch.randint(0, 20, (k,), generator=g)][region]  # (32, 32, D)
        noise = F.normalize(torch.randn(GRID, GRID, DIM, generator=g), dim=-1)
        tokens.append(F.normalize(proto + 2.0 * pos + noise, dim=-1).permute(2, 0, 1))
        # unannotated = a random subset of the regions (from about 30 % of the image to all of it)
        free_regions = torch.rand(k, generator=g) < (0.3 + 0.7 * i / (B - 1))
        free_regions[0] = True
        masks.append(free_regions[region])
    dense = torch.stack(tokens)
    free = torch.stack(masks)
    seeds, seed_mask = multiscale_seeds(dense, free, windows=(3, 7))
    x = dense.flatten(2).transpose(1, 2).contiguous()
    return x.to(device), free.reshape(B, -1).to(device), seeds.to(device), seed_mask.to(device)


@pytest.mark.parametrize("metric", ["l2", "cosine"])
@pytest.mark.parametrize("provider", ["torch", "faiss", "reference"])
def test_bench_kmeans(measure, provider: str, metric: str) -> None:
    device = "cuda" if HAS_CUDA and provider == "torch" else "cpu"
    x, x_mask, seeds, seed_mask = clip_like_batch(device=device)
    backend = {"torch": "torch", "faiss": "faiss", "reference": "sklearn"}[provider]

    def run():
        return kmeans(x, seeds, x_mask=x_mask, seed_mask=seed_mask, num_iters=ITERS, metric=metric, backend=backend)

    ref = kmeans(x.cpu(), seeds.cpu(), x_mask=x_mask.cpu(), seed_mask=seed_mask.cpu(), num_iters=ITERS, metric=metric,
                 backend="sklearn")  # fmt: skip
    out = run()
    agree = (out.assign.cpu() == ref.assign).float().mean().item()
    assert agree == 1.0, f"{provider} assignments differ from scikit-learn on {1 - agree:.2%} of the tokens"
    measure(
        run,
        kernel="kmeans",
        provider=provider,
        mode=metric,
        shape=(B, GRID * GRID, DIM, int(seed_mask.sum(1).max())),
        dtype=torch.float32,
        rounds=5,
        warmup_rounds=1,
        iterations=ITERS,
        seeds_total=int(seed_mask.sum()),
        tokens_total=int(x_mask.sum()),
    )


def interleaved(rounds: int = 5, metrics: tuple[str, ...] = ("l2", "cosine")) -> list[dict[str, float | str]]:
    """Median / best wall time per provider with the providers interleaved round by round.

    On a shared machine the load drifts between pytest-benchmark's back-to-back tests; interleaving keeps the
    ratio between providers honest. ``python benchmarks/bench_kmeans.py`` prints the table used in RESULTS.md.
    """
    import statistics
    import time

    x, x_mask, seeds, seed_mask = clip_like_batch()
    rows = []
    for metric in metrics:
        times: dict[str, list[float]] = {"torch": [], "faiss": [], "sklearn": []}
        ref = kmeans(x, seeds, x_mask=x_mask, seed_mask=seed_mask, num_iters=ITERS, metric=metric, backend="sklearn")
        for backend in times:  # warm-up + agreement check
            out = kmeans(x, seeds, x_mask=x_mask, seed_mask=seed_mask, num_iters=ITERS, metric=metric, backend=backend)
            assert torch.equal(out.assign, ref.assign), backend
        for _ in range(rounds):
            for backend, ts in times.items():
                t0 = time.perf_counter()
                kmeans(x, seeds, x_mask=x_mask, seed_mask=seed_mask, num_iters=ITERS, metric=metric, backend=backend)
                ts.append(time.perf_counter() - t0)
        base = statistics.median(times["sklearn"])
        for backend, ts in times.items():
            med = statistics.median(ts)
            rows.append({"metric": metric, "provider": backend, "median_ms": med * 1e3, "best_ms": min(ts) * 1e3,
                         "speedup_vs_sklearn": base / med})  # fmt: skip
    return rows


if __name__ == "__main__":
    import os

    print(f"threads={torch.get_num_threads()} load={os.getloadavg()}")  # noqa: T201
    fmt = "{metric:7s} {provider:8s} median {median_ms:8.1f} ms  best {best_ms:8.1f} ms  x{speedup_vs_sklearn:.2f}"
    for row in interleaved():
        print(fmt.format(**row))  # noqa: T201
    print(f"load={os.getloadavg()}")  # noqa: T201

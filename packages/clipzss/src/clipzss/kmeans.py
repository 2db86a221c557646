"""Multi-scale K-means (paper Sec. 3.3): sliding-window seeds and seeded K-means, three interchangeable backends.

* :func:`multiscale_seeds` averages the CLIP dense tokens in sliding windows (SLIC-style lattices): windows 3 and 7
  with strides 4 and 8 give 64 + 16 seeds on a 32x32 grid.
* :func:`batched_kmeans` runs one K-means per image for a whole batch at once (padded token sets with masks,
  per-image seed counts): one ``bmm`` per iteration, works on CPU and GPU. It is the default backend.
* :func:`faiss_kmeans` and :func:`sklearn_kmeans` run per image on CPU with the same seeds; they exist as references
  (tests check that the three agree) and for the benchmark.

All three follow Lloyd's iteration with the same fixed-point rule (scikit-learn's): ``assign -> update`` for at most
``num_iters`` iterations, stopping when the assignment no longer changes, and the returned assignment is the one
of the final centroids. With ``metric="cosine"`` (spherical K-means) tokens and seeds are L2-normalised, points go to
the centroid of maximal inner product and centroids are re-normalised after each mean update.

Empty clusters differ between libraries (torch keeps the old centroid and the cluster stays empty, faiss splits a
large cluster, scikit-learn moves it to a far point); the PLM drops empty clusters, so only the torch rule matters
for training, and the agreement tests use data without empty clusters.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

Metric = Literal["cosine", "l2"]
Backend = Literal["auto", "torch", "faiss", "sklearn"]

__all__ = [
    "KMeansResult",
    "batched_kmeans",
    "faiss_kmeans",
    "kmeans",
    "multiscale_seeds",
    "seed_grid_counts",
    "sklearn_kmeans",
]


@dataclass
class KMeansResult:
    """Output of a batched K-means.

    Attributes:
        assign: (B, N) int64 cluster index per token, -1 for masked-out tokens.
        centroids: (B, K, D) final centroids (rows of invalid seeds keep the seed).
        counts: (B, K) int64 tokens per cluster (0 for invalid seeds and empty clusters).
        num_iters: Iterations actually run (max over the batch).
    """

    assign: torch.Tensor
    centroids: torch.Tensor
    counts: torch.Tensor
    num_iters: int


# --------------------------------------------------------------------------------------------------- seeds


def _lattice(size: int, window: int, mode: str) -> tuple[list[int], list[tuple[int, int]]]:
    """Centre index and [start, end) of each window along one axis."""
    stride = window + 1
    if mode == "lattice":
        if window > size:
            return [], []
        n = (size - window) // stride + 1
        spans = [(i * stride, i * stride + window) for i in range(n)]
    elif mode == "adaptive":
        n = max(size // stride, 1) if window <= size else 0
        # torch.nn.AdaptiveAvgPool bins: [floor(i*size/n), ceil((i+1)*size/n)).
        spans = [((i * size) // n, -(-((i + 1) * size) // n)) for i in range(n)]
    else:
        raise ValueError(f"unknown seed mode {mode!r} (expected 'lattice' or 'adaptive')")
    centres = [(a + b - 1) // 2 for a, b in spans]
    return centres, spans


def seed_grid_counts(height: int, width: int, windows: tuple[int, ...] = (3, 7), mode: str = "lattice") -> list[int]:
    """Number of seeds per window size on an ``height x width`` token grid.

    Args:
        height: Token rows.
        width: Token columns.
        windows: Window sizes.
        mode: "lattice" (kernel w, stride w + 1) or "adaptive" (pool to ``size // (w + 1)`` per side).

    Returns:
        One count per window, e.g. ``[64, 16]`` for 32x32 with windows (3, 7).
    """
    return [len(_lattice(height, w, mode)[0]) * len(_lattice(width, w, mode)[0]) for w in windows]


def multiscale_seeds(
    tokens: torch.Tensor,
    token_mask: torch.Tensor | None = None,
    *,
    windows: tuple[int, ...] = (3, 7),
    mode: str = "lattice",
    keep: str = "center",
    normalize: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Multi-scale K-means seeds: window averages of the dense tokens (our reading of paper Eq. 4, Sec. 3.3).

    Args:
        tokens: (B, D, h, w) CLIP dense tokens.
        token_mask: (B, h, w) bool, True for unannotated tokens; None keeps every seed.
        windows: Window sizes (a window larger than the grid gives no seed at that scale).
        mode: "lattice" or "adaptive" (see :func:`seed_grid_counts`).
        keep: "center" keeps a seed whose centre token is unannotated, "majority" one whose window is mostly
            unannotated, "all" every seed.
        normalize: L2-normalise the tokens before averaging and the seeds after (cosine K-means).

    Returns:
        ``(seeds (B, K, D), seed_mask (B, K) bool)`` with K the total count over scales (same for every image);
        ``seed_mask`` marks the kept seeds.
    """
    if tokens.ndim != 4:
        raise ValueError(f"tokens must be (B, D, h, w), got {tuple(tokens.shape)}")
    if keep not in ("center", "majority", "all"):
        raise ValueError(f"unknown seed keep rule {keep!r}")
    b, d, h, w = tokens.shape
    x = F.normalize(tokens.float(), dim=1) if normalize else tokens.float()
    mask = token_mask.float() if token_mask is not None else torch.ones(b, h, w, device=tokens.device)
    seeds, keeps = [], []
    for window in windows:
        rows, row_spans = _lattice(h, window, mode)
        cols, col_spans = _lattice(w, window, mode)
        if not rows or not cols:
            continue
        if mode == "lattice":
            pooled = F.avg_pool2d(x, window, stride=window + 1)
            frac = F.avg_pool2d(mask[:, None], window, stride=window + 1)[:, 0]
        else:
            pooled = F.adaptive_avg_pool2d(x, (len(rows), len(cols)))
            frac = F.adaptive_avg_pool2d(mask[:, None], (len(rows), len(cols)))[:, 0]
        seeds.append(pooled.flatten(2).transpose(1, 2))
        if token_mask is None or keep == "all":
            keeps.append(torch.ones(b, len(rows) * len(cols), dtype=torch.bool, device=tokens.device))
        elif keep == "center":
            ri = torch.tensor(rows, device=tokens.device)
            ci = torch.tensor(cols, device=tokens.device)
            keeps.append(token_mask[:, ri][:, :, ci].reshape(b, -1).bool())
        else:
            keeps.append((frac > 0.5).reshape(b, -1))
    if not seeds:
        return tokens.new_zeros(b, 0, d, dtype=torch.float32), torch.zeros(b, 0, dtype=torch.bool, device=tokens.device)
    out = torch.cat(seeds, 1)
    if normalize:
        out = F.normalize(out, dim=-1)
    return out, torch.cat(keeps, 1)


# --------------------------------------------------------------------------------------------------- torch


def _scores(x: torch.Tensor, c: torch.Tensor, seed_mask: torch.Tensor, metric: str) -> torch.Tensor:
    """Larger is closer: ``x . c`` (cosine) or ``2 x . c - |c|^2`` (minus the squared distance up to a per-token
    constant); invalid seeds score -inf. One fused ``baddbmm``."""
    if metric == "l2":
        bias = -(c * c).sum(-1)
        alpha = 2.0
    else:
        bias = torch.zeros(c.shape[:2], device=c.device, dtype=c.dtype)
        alpha = 1.0
    bias = bias.masked_fill(~seed_mask, float("-inf"))[:, None, :]
    return torch.baddbmm(bias, x, c.transpose(1, 2), alpha=alpha)


def _check_metric(metric: str) -> None:
    if metric not in ("cosine", "l2"):
        raise ValueError(f"unknown K-means metric {metric!r} (expected 'cosine' or 'l2')")


@torch.no_grad()
def batched_kmeans(
    x: torch.Tensor,
    seeds: torch.Tensor,
    *,
    x_mask: torch.Tensor | None = None,
    seed_mask: torch.Tensor | None = None,
    num_iters: int = 20,
    metric: Metric = "cosine",
    stop_when_converged: bool = True,
) -> KMeansResult:
    """Seeded K-means for a whole batch at once (one per image), on any device.

    One ``baddbmm`` per iteration assigns every token of every image. Padding is compacted away (real tokens and
    seeds first, the batch cut to the largest per-image counts), the cluster sums are built once with a one-hot
    ``bmm`` and then updated incrementally from the tokens whose assignment changed, and an image leaves the batch
    as soon as it reaches its fixed point (the batch shrinks, so the cost follows the per-image iteration counts).

    Args:
        x: (B, N, D) points (padded token sets).
        seeds: (B, K, D) initial centroids (padded seed sets).
        x_mask: (B, N) bool, True for real points; None = all.
        seed_mask: (B, K) bool, True for real seeds (per-image seed counts); None = all.
        num_iters: Maximum number of assign/update iterations.
        metric: "cosine" (spherical, points and seeds are L2-normalised) or "l2".
        stop_when_converged: Stop an image when none of its assignments changed (one device sync per iteration).

    Returns:
        A :class:`KMeansResult`.
    """
    _check_metric(metric)
    if x.ndim != 3 or seeds.ndim != 3 or x.shape[0] != seeds.shape[0] or x.shape[2] != seeds.shape[2]:
        raise ValueError(f"expected x (B, N, D) and seeds (B, K, D), got {tuple(x.shape)} and {tuple(seeds.shape)}")
    b, n, d = x.shape
    k = seeds.shape[1]
    x = x.float()
    c = seeds.float().clone()
    if metric == "cosine":
        x = F.normalize(x, dim=-1)
        c = F.normalize(c, dim=-1)
    x_mask = torch.ones(b, n, dtype=torch.bool, device=x.device) if x_mask is None else x_mask.bool()
    seed_mask = torch.ones(b, k, dtype=torch.bool, device=x.device) if seed_mask is None else seed_mask.bool()
    assign_out = torch.full((b, n), -1, dtype=torch.long, device=x.device)
    counts_out = torch.zeros(b, k, dtype=torch.long, device=x.device)
    if k == 0 or n == 0:
        return KMeansResult(assign_out, c, counts_out, 0)
    # Images without any seed assign nothing.
    valid_x = x_mask & seed_mask.any(1)[:, None]
    n_eff = int(valid_x.sum(1).max())
    k_eff = int(seed_mask.sum(1).max())
    if n_eff == 0 or k_eff == 0:
        return KMeansResult(assign_out, c, counts_out, 0)
    # Real tokens / seeds first (stable), cut to the largest per-image counts.
    order_x = torch.argsort((~valid_x).to(torch.int8), dim=1, stable=True)[:, :n_eff]
    order_k = torch.argsort((~seed_mask).to(torch.int8), dim=1, stable=True)[:, :k_eff]
    xc = torch.gather(x, 1, order_x[..., None].expand(-1, -1, d))
    cc = torch.gather(c, 1, order_k[..., None].expand(-1, -1, d))
    vx = torch.gather(valid_x, 1, order_x)
    sm = torch.gather(seed_mask, 1, order_k)
    # An image without seeds gets a dummy valid column so argmax is defined (its tokens are invalid anyway).
    sm = sm | ~sm.any(1, keepdim=True)
    assign, cc, iters = _lloyd(xc, cc, vx, sm, num_iters, metric, stop_when_converged)
    c = c.scatter(1, order_k[..., None].expand(-1, -1, d), cc)
    assign_out.scatter_(1, order_x, torch.where(vx, order_k.gather(1, assign), -1))
    counts_out.scatter_add_(1, assign_out.clamp_min(0), (assign_out >= 0).long())
    return KMeansResult(assign_out, c, counts_out, iters)


class _Active:
    """The images still iterating, with their (sliced) working tensors; tokens and seeds are real-first."""

    def __init__(self, x: torch.Tensor, c: torch.Tensor, valid_x: torch.Tensor, seed_mask: torch.Tensor) -> None:
        self.ids = torch.arange(x.shape[0], device=x.device)
        self.x, self.c, self.valid_x, self.seed_mask = x, c, valid_x, seed_mask

    def keep(
        self, keep: torch.Tensor, tokens: list[torch.Tensor], seeds: list[torch.Tensor], scores: torch.Tensor
    ) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
        """Drop finished images and cut the token / seed axes to the largest remaining counts.

        Args:
            keep: (B,) images that go on.
            tokens: Other (B, N, ...) tensors to cut alike.
            seeds: Other (B, K, ...) tensors to cut alike.
            scores: The (B, N, K) score matrix.
        """
        n_eff = int(self.valid_x[keep].sum(1).max())
        k_eff = int(self.seed_mask[keep].sum(1).max())
        self.ids = self.ids[keep]
        self.x = self.x[keep, :n_eff]
        self.c = self.c[keep, :k_eff]
        self.valid_x = self.valid_x[keep, :n_eff]
        self.seed_mask = self.seed_mask[keep, :k_eff]
        return (
            [t[keep, :n_eff] for t in tokens],
            [t[keep, :k_eff] for t in seeds],
            scores[keep, :n_eff, :k_eff],
        )


def _lloyd(
    x: torch.Tensor,
    c: torch.Tensor,
    valid_x: torch.Tensor,
    seed_mask: torch.Tensor,
    num_iters: int,
    metric: str,
    stop_when_converged: bool,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Lloyd iterations on a compact batch; returns (assign (B, N), centroids (B, K, D), iterations)."""
    b, n, d = x.shape
    k = c.shape[1]
    assign_out = torch.zeros(b, n, dtype=torch.long, device=x.device)
    c_out = c.clone()
    act = _Active(x, c, valid_x, seed_mask)

    def rescore(scores: torch.Tensor, touched: torch.Tensor) -> torch.Tensor:
        """Recompute the score columns of the centroids that moved (the others are bitwise unchanged)."""
        kc = int(touched.sum(1).max())
        if kc == 0:
            return scores
        if 2 * kc >= touched.shape[1]:
            return _scores(act.x, act.c, act.seed_mask, metric)
        cols = torch.argsort((~touched).to(torch.int8), dim=1, stable=True)[:, :kc]
        sub = _scores(
            act.x, torch.gather(act.c, 1, cols[..., None].expand(-1, -1, d)), act.seed_mask.gather(1, cols), metric
        )
        idx = cols[:, None, :].expand(-1, scores.shape[1], -1)
        fresh = torch.where(touched.gather(1, cols)[:, None, :], sub, scores.gather(2, idx))
        return scores.scatter(2, idx, fresh)

    def update_centroids(sums: torch.Tensor, counts: torch.Tensor) -> None:
        means = sums / counts.clamp_min(1)[..., None]
        if metric == "cosine":
            means = F.normalize(means, dim=-1)
        # Empty clusters keep their centroid (and are dropped by the PLM).
        act.c = torch.where((counts > 0)[..., None], means, act.c)

    def finish(rows: torch.Tensor, assign: torch.Tensor) -> None:
        ids = act.ids[rows]
        assign_out[ids, : assign.shape[1]] = assign[rows]
        c_out[ids, : act.c.shape[1]] = act.c[rows]

    scores = _scores(act.x, act.c, act.seed_mask, metric)
    assign = scores.argmax(-1)
    if num_iters == 0:
        finish(torch.ones(b, dtype=torch.bool, device=x.device), assign)
        return assign_out, c_out, 0
    weight = valid_x.to(x.dtype)
    one_hot = torch.zeros(b, n, k, device=x.device, dtype=x.dtype).scatter_(2, assign[..., None], weight[..., None])
    sums, counts = torch.bmm(one_hot.transpose(1, 2), x), one_hot.sum(1)
    del one_hot
    update_centroids(sums, counts)
    scores = _scores(act.x, act.c, act.seed_mask, metric)
    prev, iters = assign, 1
    for it in range(1, num_iters):
        assign = scores.argmax(-1)
        changed = (assign != prev) & act.valid_x
        if stop_when_converged:
            moving = changed.any(1)
            if not bool(moving.all()):
                finish(~moving, assign)  # these images reached their fixed point
                if not bool(moving.any()):
                    return assign_out, c_out, iters
                # Images at their fixed point change nothing if they stay; drop them once a quarter of the batch
                # is done, as the copy of the working tensors then pays off.
                if 4 * int((~moving).sum()) >= moving.numel():
                    (assign, prev, changed), (sums, counts), scores = act.keep(
                        moving, [assign, prev, changed], [sums, counts], scores
                    )
        # Incremental update: move the changed tokens from their old to their new cluster.
        bi, ni = changed.nonzero(as_tuple=True)
        old_k, new_k, rows = prev[bi, ni], assign[bi, ni], act.x[bi, ni]
        sums.index_put_((bi, old_k), -rows, accumulate=True)
        sums.index_put_((bi, new_k), rows, accumulate=True)
        ones = torch.ones_like(old_k, dtype=x.dtype)
        counts.index_put_((bi, old_k), -ones, accumulate=True)
        counts.index_put_((bi, new_k), ones, accumulate=True)
        touched = torch.zeros_like(counts, dtype=torch.bool)
        touched[bi, old_k] = True
        touched[bi, new_k] = True
        update_centroids(sums, counts)
        scores = rescore(scores, touched)
        prev, iters = assign, it + 1
    # Iteration budget used up: the assignment of the final centroids.
    finish(torch.ones(act.ids.shape[0], dtype=torch.bool, device=x.device), scores.argmax(-1))
    return assign_out, c_out, iters


# --------------------------------------------------------------------------------------------------- CPU libraries


def _final_assign(x: np.ndarray, c: np.ndarray, metric: str) -> np.ndarray:
    dots = x @ c.T
    if metric == "l2":
        dots = 2 * dots - (c * c).sum(-1)[None]
    return dots.argmax(-1)


def _prep(x: torch.Tensor | np.ndarray, metric: str) -> np.ndarray:
    arr = x.detach().float().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float32)
    if metric == "cosine":
        arr = arr / np.maximum(np.linalg.norm(arr, axis=-1, keepdims=True), 1e-12)
    return np.ascontiguousarray(arr, dtype=np.float32)


def _import_faiss():
    try:
        import faiss
    except ImportError as e:
        raise RuntimeError(
            "the faiss K-means backend needs faiss: `pip install clipzss[faiss]` (CPU) or `clipzss[faiss-gpu]` "
            "(CUDA 13, Linux x86_64); in this workspace `uv sync` installs faiss-cpu. backend='torch' needs neither"
        ) from e
    return faiss


def faiss_gpu_available() -> bool:
    """True when the installed faiss is a GPU build and sees at least one GPU."""
    try:
        faiss = _import_faiss()
    except RuntimeError:
        return False
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


@functools.cache
def _gpu_resources():
    # One StandardGpuResources per process: it reserves scratch memory and a cuBLAS handle on creation.
    return _import_faiss().StandardGpuResources()


def _flat_index(d: int, metric: Metric, gpu: bool):
    faiss = _import_faiss()
    index = faiss.IndexFlatIP(d) if metric == "cosine" else faiss.IndexFlatL2(d)
    if gpu:
        index = faiss.index_cpu_to_gpu(_gpu_resources(), torch.cuda.current_device(), index)
    return index


def faiss_kmeans(
    x: torch.Tensor | np.ndarray,
    seeds: torch.Tensor | np.ndarray,
    *,
    num_iters: int = 20,
    metric: Metric = "cosine",
    gpu: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded K-means of one image with faiss (``faiss.Clustering`` with the seeds copied into ``centroids``).

    Args:
        x: (N, D) points.
        seeds: (K, D) initial centroids, K <= N.
        num_iters: Iterations.
        metric: "cosine" (``spherical=True`` with an inner-product index) or "l2".
        gpu: search the assignments with a faiss GPU index (needs the ``faiss-gpu`` build and a GPU).

    Returns:
        ``(assign (N,) int64, centroids (K, D) float32)``.

    Raises:
        RuntimeError: faiss is missing, or ``gpu=True`` without a faiss GPU build and a visible GPU.
    """
    faiss = _import_faiss()
    if gpu and not faiss_gpu_available():
        raise RuntimeError(
            "gpu=True needs a faiss GPU build and a visible GPU (`uv sync --no-group faiss-cpu --group faiss-gpu`)"
        )
    _check_metric(metric)
    xs, cs = _prep(x, metric), _prep(seeds, metric)
    n, d = xs.shape
    k = cs.shape[0]
    if k > n:
        raise ValueError(f"faiss needs at least as many points as seeds, got {n} points and {k} seeds")
    cp = faiss.ClusteringParameters()
    cp.niter = num_iters
    cp.spherical = metric == "cosine"
    # No subsampling and no "too few points" warning: a token set is small and must be used whole.
    cp.max_points_per_centroid = max(n, 1) * 2
    cp.min_points_per_centroid = 1
    clus = faiss.Clustering(d, k, cp)
    faiss.copy_array_to_vector(cs.ravel(), clus.centroids)
    index = _flat_index(d, metric, gpu)
    # One image is ~1000 points: faiss's OpenMP threads only add barrier waits (15x slower on a busy 2-core box).
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        clus.train(xs, index)
    finally:
        faiss.omp_set_num_threads(threads)
    cent = faiss.vector_float_to_array(clus.centroids).reshape(k, d)
    return _final_assign(xs, cent, metric).astype(np.int64), cent


def sklearn_kmeans(
    x: torch.Tensor | np.ndarray, seeds: torch.Tensor | np.ndarray, *, num_iters: int = 20, metric: Metric = "cosine"
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded K-means of one image with scikit-learn (``KMeans(init=seeds, n_init=1)``).

    scikit-learn has no spherical K-means, so ``metric="cosine"`` runs one ``max_iter=1`` fit per iteration and
    re-normalises the centroids in between (the same fixed-point rule as the other backends).

    Args:
        x: (N, D) points.
        seeds: (K, D) initial centroids, K <= N.
        num_iters: Iterations.
        metric: "cosine" or "l2".

    Returns:
        ``(assign (N,) int64, centroids (K, D) float32)``.
    """
    from sklearn.cluster import KMeans

    _check_metric(metric)
    xs, cs = _prep(x, metric), _prep(seeds, metric)
    if cs.shape[0] > xs.shape[0]:
        raise ValueError(f"scikit-learn needs at least as many points as seeds, got {len(xs)} and {len(cs)}")
    if metric == "l2":
        # tol=0: stop only at a fixed point of the assignment, like the other backends.
        km = KMeans(cs.shape[0], init=cs, n_init=1, max_iter=num_iters, tol=0.0, algorithm="lloyd").fit(xs)
        cent = km.cluster_centers_.astype(np.float32)
        return _final_assign(xs, cent, metric).astype(np.int64), cent
    cent = cs
    prev = None
    for _ in range(num_iters):
        # On unit vectors with unit centroids the Euclidean assignment inside the fit is the cosine one.
        labels = _final_assign(xs, cent, metric)
        if prev is not None and np.array_equal(labels, prev):
            break
        km = KMeans(cent.shape[0], init=cent, n_init=1, max_iter=1, tol=0.0, algorithm="lloyd").fit(xs)
        cent = km.cluster_centers_.astype(np.float32)
        cent = cent / np.maximum(np.linalg.norm(cent, axis=-1, keepdims=True), 1e-12)
        prev = labels
    return _final_assign(xs, cent, metric).astype(np.int64), cent


# --------------------------------------------------------------------------------------------------- dispatch


def kmeans(
    x: torch.Tensor,
    seeds: torch.Tensor,
    *,
    x_mask: torch.Tensor | None = None,
    seed_mask: torch.Tensor | None = None,
    num_iters: int = 20,
    metric: Metric = "cosine",
    backend: Backend = "auto",
) -> KMeansResult:
    """Seeded per-image K-means of a padded batch with the chosen backend.

    Args:
        x: (B, N, D) points.
        seeds: (B, K, D) seeds.
        x_mask: (B, N) bool real points.
        seed_mask: (B, K) bool real seeds.
        num_iters: Maximum iterations.
        metric: "cosine" or "l2".
        backend: "auto"/"torch" (batched, any device), "faiss" or "sklearn" (per image; results are moved back to
            ``x.device``). faiss searches on the GPU when ``x`` is a CUDA tensor and a faiss GPU build is installed.

    Returns:
        A :class:`KMeansResult` (for the CPU libraries ``num_iters`` is the requested maximum).
    """
    if backend in ("auto", "torch"):
        return batched_kmeans(x, seeds, x_mask=x_mask, seed_mask=seed_mask, num_iters=num_iters, metric=metric)
    if backend not in ("faiss", "sklearn"):
        raise ValueError(f"unknown K-means backend {backend!r}")
    if backend == "faiss":
        fn = functools.partial(faiss_kmeans, gpu=x.is_cuda and faiss_gpu_available())
    else:
        fn = sklearn_kmeans
    b, n, d = x.shape
    k = seeds.shape[1]
    x_mask = torch.ones(b, n, dtype=torch.bool) if x_mask is None else x_mask.bool().cpu()
    seed_mask = torch.ones(b, k, dtype=torch.bool) if seed_mask is None else seed_mask.bool().cpu()
    assign = torch.full((b, n), -1, dtype=torch.long)
    cent = seeds.detach().float().cpu().clone()
    if metric == "cosine":
        cent = F.normalize(cent, dim=-1)
    counts = torch.zeros(b, k, dtype=torch.long)
    xc = x.detach().float().cpu()
    for i in range(b):
        xi, si = xc[i][x_mask[i]], seeds[i].detach().float().cpu()[seed_mask[i]]
        if len(xi) == 0 or len(si) == 0:
            continue
        if len(si) > len(xi):
            # The libraries refuse K > N; the batched torch path handles it (some clusters stay empty).
            res = batched_kmeans(xi[None], si[None], num_iters=num_iters, metric=metric)
            a, ci = res.assign[0].numpy(), res.centroids[0].numpy()
        else:
            a, ci = fn(xi, si, num_iters=num_iters, metric=metric)
        cols = seed_mask[i].nonzero()[:, 0]
        assign[i, x_mask[i]] = cols[torch.from_numpy(a)]
        cent[i, cols] = torch.from_numpy(np.asarray(ci, dtype=np.float32))
        counts[i, cols] = torch.bincount(torch.from_numpy(a), minlength=len(cols))
    dev = x.device
    return KMeansResult(assign.to(dev), cent.to(dev), counts.to(dev), num_iters)

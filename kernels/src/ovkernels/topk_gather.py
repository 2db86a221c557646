"""Batched category early rejection (SED paper Sec. 3.3), per image instead of SED's union over the whole batch.

Three steps, each a Triton kernel with a PyTorch reference:

* :func:`topk_category_mask`: logits (B, T, H, W) -> bool (B, T), class t of image b is kept iff it is among the
  top-k classes of at least one pixel of image b. Ties follow a fixed rule: order by (logit descending, class index
  ascending), i.e. the lowest index wins, the order of a stable descending sort. The kernel needs no sort: per
  pixel it walks that order k times (each step takes the best element strictly after the previous one), which
  yields the k-th element (v_k, t_k); then it marks every (v > v_k) or (v == v_k and t <= t_k). For T <= 2048
  the class column of a few pixels stays in registers (one read of the logits, k register passes); longer class
  axes are streamed in chunks (k + 1 passes from L1/L2). NaN logits are never kept.
* :func:`compact_categories`: mask -> (indices, offsets), CSR style: the kept class ids of image b are
  ``indices[offsets[b]:offsets[b + 1]]`` in increasing order.
* :func:`gather_categories`: x (B, T, C, H, W) -> (sum_b T_b, C, H, W), row j = x[b(j), indices[j]]; the backward
  scatter-adds into a zero gradient.
"""

import torch

from ovkernels.utils import cdiv, ensure_contiguous, next_power_of_2, tl, triton, use_triton


@triton.jit
def _load_tile(X_IMAGE, ts, pix, p_ok, T, HW):
    """The (classes ts x pixels pix) tile of one image's logits in fp32, and its mask; padding reads -inf."""
    m = (ts < T)[:, None] & p_ok[None, :]
    x = tl.load(X_IMAGE + ts[:, None] * HW + pix[None, :], mask=m, other=float("-inf")).to(tl.float32)
    return x, m


@triton.jit
def _next_in_order(x, ts, m, thr_v, thr_t, T):
    """Per pixel (column), the first element after (thr_v, thr_t) in (value desc, index asc) order: (value, index).

    Columns with nothing left give (-inf, T).
    """
    after = (x < thr_v[None, :]) | ((x == thr_v[None, :]) & (ts[:, None] > thr_t[None, :]))
    elig = m & after
    best_v = tl.max(tl.where(elig, x, float("-inf")), axis=0)
    best_t = tl.min(tl.where(elig & (x == best_v[None, :]), ts[:, None], T), axis=0)
    return best_v, best_t


@triton.jit
def _mark_kept(MASK_ROW, x, ts, m, thr_v, thr_t, T):
    """Set MASK_ROW[t] for every class t of the tile that some pixel keeps: up to (thr_v, thr_t) in the order."""
    sel = m & ((x > thr_v[None, :]) | ((x == thr_v[None, :]) & (ts[:, None] <= thr_t[None, :])))
    hit = tl.max(sel.to(tl.int32), axis=1)
    # Every writer stores the same 1, so concurrent programs need no atomics.
    tl.store(MASK_ROW + ts, hit.to(tl.uint8), mask=(ts < T) & (hit > 0))


@triton.jit
def _topk_mask_kernel(X, MASK, T, HW, k, BLOCK_T: tl.constexpr, BLOCK_P: tl.constexpr, RESIDENT: tl.constexpr):
    # Pixel blocks on grid axis 0 (up to 2**31 - 1), images on axis 1.
    pix = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
    b = tl.program_id(1)
    p_ok = pix < HW
    base = b.to(tl.int64) * T * HW
    offs_t = tl.arange(0, BLOCK_T)
    # (thr_v, thr_t): the last element taken so far; starts before everything.
    thr_v = tl.full([BLOCK_P], float("inf"), dtype=tl.float32)
    thr_t = tl.full([BLOCK_P], -1, dtype=tl.int32)
    if RESIDENT:
        # The whole class column of BLOCK_P pixels lives in registers: one load, then k register-only passes.
        x, m = _load_tile(X + base, offs_t, pix, p_ok, T, HW)
        for _ in range(k):
            thr_v, thr_t = _next_in_order(x, offs_t, m, thr_v, thr_t, T)
        _mark_kept(MASK + b * T, x, offs_t, m, thr_v, thr_t, T)
    else:
        # Long class axes: stream it in chunks, k + 1 passes (re-reads hit L1/L2).
        for _ in range(k):
            best_v = tl.full([BLOCK_P], float("-inf"), dtype=tl.float32)
            best_t = tl.zeros([BLOCK_P], dtype=tl.int32) + T
            for t0 in range(0, T, BLOCK_T):
                ts = t0 + offs_t
                x, m = _load_tile(X + base, ts, pix, p_ok, T, HW)
                cv, ct = _next_in_order(x, ts, m, thr_v, thr_t, T)
                # Chunks come in index order, so an equal value from a later chunk never wins.
                better = (cv > best_v) | ((cv == best_v) & (ct < best_t))
                best_v = tl.where(better, cv, best_v)
                best_t = tl.where(better, ct, best_t)
            thr_v = best_v
            thr_t = best_t
        for t0 in range(0, T, BLOCK_T):
            ts = t0 + offs_t
            x, m = _load_tile(X + base, ts, pix, p_ok, T, HW)
            _mark_kept(MASK + b * T, x, ts, m, thr_v, thr_t, T)


@triton.jit
def _compact_kernel(MASK, OFFSETS, IDX, T, BLOCK_T: tl.constexpr):
    b = tl.program_id(0)
    pos = tl.load(OFFSETS + b)
    offs = tl.arange(0, BLOCK_T)
    for t0 in range(0, T, BLOCK_T):
        ts = t0 + offs
        ok = ts < T
        m = tl.load(MASK + b * T + ts, mask=ok, other=0).to(tl.int32)
        rank = tl.cumsum(m, axis=0)  # inclusive prefix count inside this chunk
        tl.store(IDX + pos + rank - 1, ts.to(tl.int64), mask=ok & (m > 0))
        pos += tl.sum(m, axis=0)


@triton.jit
def _image_of_row(OFFSETS, j, B):
    # offsets[b] <= j < offsets[b + 1]; B is small (a batch), so a linear scan is cheapest.
    b = j * 0
    for bb in range(1, B):
        b += (tl.load(OFFSETS + bb) <= j).to(tl.int32)
    return b


@triton.jit
def _gather_block(IDX, OFFSETS, B, T, ROW, BLOCK: tl.constexpr):
    """This program's packed row j and element block: (start of x row b(j)*T + indices[j], start of row j, offs, ok)."""
    j = tl.program_id(0)
    b = _image_of_row(OFFSETS, j, B)
    x_row = (b * T + tl.load(IDX + j)).to(tl.int64) * ROW
    offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    return x_row, j.to(tl.int64) * ROW, offs, offs < ROW


@triton.jit
def _gather_fwd_kernel(X, IDX, OFFSETS, Y, B, T, ROW, BLOCK: tl.constexpr):
    x_row, y_row, offs, ok = _gather_block(IDX, OFFSETS, B, T, ROW, BLOCK)
    tl.store(Y + y_row + offs, tl.load(X + x_row + offs, mask=ok), mask=ok)


@triton.jit
def _gather_bwd_kernel(DY, IDX, OFFSETS, DX, B, T, ROW, BLOCK: tl.constexpr):
    x_row, y_row, offs, ok = _gather_block(IDX, OFFSETS, B, T, ROW, BLOCK)
    g = tl.load(DY + y_row + offs, mask=ok).to(tl.float32)
    # Atomic add so that repeated (b, t) rows accumulate; rows from compact_categories never collide.
    tl.atomic_add(DX + x_row + offs, g, mask=ok)


def _topk_mask_launch(logits: torch.Tensor, k: int, resident_max: int = 2048, chunk: int = 256) -> torch.Tensor:
    bsz, t, h, w = logits.shape
    hw = h * w
    mask = torch.zeros((bsz, t), device=logits.device, dtype=torch.uint8)
    t_pad = next_power_of_2(t)
    resident = t_pad <= resident_max
    if resident:  # ~8192 values per program: T = 847 -> 8 pixels, T = 150 -> 32 pixels
        block_t, block_p = t_pad, max(4, min(64, 8192 // t_pad))
    else:
        block_t, block_p = min(chunk, t_pad), 16
    block_p = min(block_p, max(4, next_power_of_2(hw)))
    grid = (cdiv(hw, block_p), bsz)
    num_warps = 8 if block_t * block_p >= 8192 else 4
    _topk_mask_kernel[grid](
        logits, mask, t, hw, k, BLOCK_T=block_t, BLOCK_P=block_p, RESIDENT=resident, num_warps=num_warps
    )
    return mask.view(torch.bool)


def _offsets_from_counts(counts: torch.Tensor) -> torch.Tensor:
    offsets = torch.zeros(counts.numel() + 1, device=counts.device, dtype=torch.int64)
    torch.cumsum(counts, 0, out=offsets[1:])
    return offsets


def _compact_launch(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    bsz, t = mask.shape
    offsets = _offsets_from_counts(mask.sum(1))
    total = int(offsets[-1])  # the output length is data dependent: one host sync, as with nonzero()
    indices = torch.empty(total, device=mask.device, dtype=torch.int64)
    if total:
        block_t = min(1024, max(16, next_power_of_2(t)))
        _compact_kernel[(bsz,)](mask.view(torch.uint8), offsets, indices, t, BLOCK_T=block_t, num_warps=4)
    return indices, offsets


def _gather_grid(rows: int, row: int) -> tuple[tuple[int, int], int]:
    block = min(1024, max(16, next_power_of_2(row)))
    return (rows, cdiv(row, block)), block


class GatherCategoriesFunction(torch.autograd.Function):
    """Triton row gather (forward) and scatter-add (backward) of per-image kept categories."""

    @staticmethod
    @ensure_contiguous
    def forward(ctx, x: torch.Tensor, indices: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        bsz, t = x.shape[:2]
        row = x[0, 0].numel() if x.numel() else 0
        y = x.new_empty((indices.numel(), *x.shape[2:]))
        if y.numel():
            grid, block = _gather_grid(indices.numel(), row)
            _gather_fwd_kernel[grid](x, indices, offsets, y, bsz, t, row, BLOCK=block, num_warps=4)
        ctx.save_for_backward(indices, offsets)
        ctx.x_shape = x.shape
        ctx.x_dtype = x.dtype
        return y

    @staticmethod
    @ensure_contiguous
    def backward(ctx, dy: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:
        indices, offsets = ctx.saved_tensors
        bsz, t = ctx.x_shape[:2]
        dx = torch.zeros(ctx.x_shape, device=dy.device, dtype=torch.float32)
        if dy.numel():
            row = dy[0].numel()
            grid, block = _gather_grid(indices.numel(), row)
            _gather_bwd_kernel[grid](dy, indices, offsets, dx, bsz, t, row, BLOCK=block, num_warps=4)
        return dx.to(ctx.x_dtype), None, None


def reference_topk_category_mask(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Pure PyTorch ground truth for :func:`topk_category_mask` (same tie rule: lowest class index wins; NaN is
    never kept).

    The k-th largest value v_k of a pixel is unambiguous even with ties, so a pixel keeps every class above v_k
    and the first ``k - #(above)`` classes equal to v_k, counted by a prefix sum over the class axis.
    """
    bsz, t = logits.shape[:2]
    x = logits.float().flatten(2).transpose(1, 2)  # (B, P, T): the class axis innermost for the reductions
    if x.shape[1] == 0:
        return torch.zeros((bsz, t), device=logits.device, dtype=torch.bool)
    if k >= t:
        return torch.ones((bsz, t), device=logits.device, dtype=torch.bool)
    # As in the kernel, NaN ranks below every number and is never kept; topk alone would rank it first, take one
    # of the pixel's k places for it and so keep fewer real classes than the kernel.
    number = ~x.isnan()
    x = x.masked_fill(~number, float("-inf"))
    kth = x.topk(k, dim=2).values[..., -1:]
    above = x > kth
    tied = (x == kth) & number
    room = k - above.sum(2, keepdim=True, dtype=torch.int32)
    keep = above | (tied & (tied.cumsum(2, dtype=torch.int32) <= room))
    return keep.any(1)


def reference_compact_categories(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pure PyTorch ground truth for :func:`compact_categories` (``nonzero`` is row-major, so ids increase)."""
    indices = mask.nonzero()[:, 1].contiguous()
    return indices, _offsets_from_counts(mask.sum(1))


def reference_gather_categories(x: torch.Tensor, indices: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Pure PyTorch ground truth for :func:`gather_categories`: ``index_select`` of rows b*T + t.

    Its backward is ``index_add`` (a scatter-add). Class ids must lie in [0, T): they are not range-checked.
    """
    bsz, t = x.shape[:2]
    counts = offsets[1:] - offsets[:-1]
    image = torch.repeat_interleave(torch.arange(bsz, device=x.device), counts, output_size=indices.numel())
    return x.reshape(bsz * t, *x.shape[2:]).index_select(0, image * t + indices)


def topk_category_mask(logits: torch.Tensor, k: int, *, backend: str | None = None) -> torch.Tensor:
    """Per-image union over pixels of each pixel's top-k classes (SED category early rejection).

    Args:
        logits: (B, T, H, W) class scores (raw logits are fine: only the order matters).
        k: classes kept per pixel, >= 1; k >= T keeps everything.
        backend: ``None``/``"auto"``, ``"triton"`` or ``"reference"`` (see :func:`ovkernels.utils.use_triton`).

    Returns:
        bool (B, T). Ties are broken towards the lowest class index; NaN logits are never kept (unless k >= T).
    """
    if logits.dim() != 4:
        raise ValueError(f"logits must be (B, T, H, W), got shape {tuple(logits.shape)}")
    if not logits.is_floating_point():
        raise ValueError(f"logits must be floating point, got {logits.dtype}")
    if isinstance(k, bool) or int(k) != k or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    k = int(k)
    triton_path = use_triton(logits, backend)
    if logits.numel() == 0 or k >= logits.shape[1] or not triton_path:
        return reference_topk_category_mask(logits, k)
    return _topk_mask_launch(logits.contiguous(), k)


def compact_categories(mask: torch.Tensor, *, backend: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Kept class ids per image in CSR form.

    Args:
        mask: bool (B, T), e.g. from :func:`topk_category_mask`.
        backend: ``None``/``"auto"``, ``"triton"`` or ``"reference"``.

    Returns:
        ``(indices, offsets)``: int64 (sum_b T_b,) class ids, increasing within each image, and int64 (B + 1,)
        offsets; image b owns ``indices[offsets[b]:offsets[b + 1]]``. Synchronises with the device once (the
        output length depends on the data).
    """
    if mask.dim() != 2 or mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool (B, T) tensor, got {mask.dtype} of shape {tuple(mask.shape)}")
    triton_path = use_triton(mask, backend)
    if mask.numel() == 0 or not triton_path:
        return reference_compact_categories(mask)
    return _compact_launch(mask.contiguous())


def gather_categories(
    x: torch.Tensor, indices: torch.Tensor, offsets: torch.Tensor, *, backend: str | None = None
) -> torch.Tensor:
    """Pack the kept categories of every image into one tensor, ``out[j] = x[b(j), indices[j]]``.

    Args:
        x: (B, T, C, H, W) per-class features (any trailing shape works), e.g. SED's (B*T, C, H, W) maps viewed
            as (B, T, C, H, W).
        indices: int64 (J,) class ids, from :func:`compact_categories`.
        offsets: int64 (B + 1,), image b owns rows ``offsets[b]:offsets[b + 1]``; ``offsets[-1] == J``.
        backend: ``None``/``"auto"``, ``"triton"`` or ``"reference"``.

    Returns:
        (J, C, H, W) = (sum_b T_b, C, H, W); differentiable in ``x`` (the gradient is scattered back, summing
        repeated rows). Class ids must lie in [0, T): they are not range-checked.
    """
    if x.dim() < 2:
        raise ValueError(f"x must be (B, T, ...), got shape {tuple(x.shape)}")
    if indices.dim() != 1 or indices.dtype != torch.int64:
        raise ValueError(f"indices must be int64 (J,), got {indices.dtype} of shape {tuple(indices.shape)}")
    if offsets.dim() != 1 or offsets.dtype != torch.int64 or offsets.numel() != x.shape[0] + 1:
        raise ValueError(f"offsets must be int64 ({x.shape[0] + 1},), got {offsets.dtype} {tuple(offsets.shape)}")
    if indices.device != x.device or offsets.device != x.device:
        raise ValueError("x, indices and offsets must be on the same device")
    if not use_triton(x, backend):
        return reference_gather_categories(x, indices, offsets)
    return GatherCategoriesFunction.apply(x, indices, offsets)

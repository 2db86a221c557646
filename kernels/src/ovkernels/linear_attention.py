"""Multi-head linear attention over the class axis (SED FAM class-level fusion; Katharopoulos et al. 2020).

For each of N independent sequences (N = B*h*w spatial locations, sequence = the T classes) and each head,
with phi(u) = elu(u) + 1::

    S = sum_s phi(k_s)^T v_s   (D x D),   z = sum_s phi(k_s)   (D,)
    out_l = phi(q_l) S / (phi(q_l) . z + eps)

One program per (sequence, head) keeps S and z in registers: pass 1 streams k, v; pass 2 streams q and writes
out, so neither S nor the normaliser is ever written to memory. The backward recomputes S and z, streams
(q, dout) to produce dq and the reductions dS = sum_l phi(q_l)^T gn_l and dz = sum_l gd_l phi(q_l), then streams
(k, v) again for dk and dv (derivation in ``_la_bwd_kernel``).

Head widths in SED are 32/16/8 (C = 128/64/32, 4 heads). Widths >= 16 use ``tl.dot`` (tiles >= 16 as GPUs
require); narrower heads use broadcast-multiply-reduce, which compiles for any tile size.
"""

import torch
import torch.nn.functional as F

from ovkernels.utils import check_float, ensure_contiguous, next_power_of_2, tl, triton, use_triton


@triton.jit
def _phi(x):
    # elu(x) + 1; the min keeps exp finite on the branch that tl.where discards.
    return tl.where(x > 0, x + 1.0, tl.exp(tl.minimum(x, 0.0)))


@triton.jit
def _dphi(x):
    return tl.where(x > 0, 1.0, tl.exp(tl.minimum(x, 0.0)))


@triton.jit
def _mm(a, b, USE_DOT: tl.constexpr, PREC: tl.constexpr):
    """a @ b for [M, K] x [K, N] register tiles."""
    if USE_DOT:
        return tl.dot(a, b, input_precision=PREC)
    else:
        return tl.sum(a[:, :, None] * b[None, :, :], axis=1)


@triton.jit
def _row_tile(base, l0, offs_l, offs_d, d_ok, L, row_stride):
    """Offsets and mask of the (BLOCK_L, BLOCK_D) tile of rows l0.. of one (sequence, head)."""
    rows = l0 + offs_l
    m = (rows < L)[:, None] & d_ok[None, :]
    return base + rows[:, None] * row_stride + offs_d[None, :], m


@triton.jit
def _kv_state(
    K,
    V,
    base,
    L,
    row_stride,
    offs_l,
    offs_d,
    d_ok,
    BLOCK_L: tl.constexpr,
    BLOCK_D: tl.constexpr,
    USE_DOT: tl.constexpr,
    PREC: tl.constexpr,
):
    """S = sum_s phi(k_s)^T v_s and z = sum_s phi(k_s) for one (sequence, head), in fp32 registers."""
    kv = tl.zeros([BLOCK_D, BLOCK_D], dtype=tl.float32)
    z = tl.zeros([BLOCK_D], dtype=tl.float32)
    for l0 in range(0, L, BLOCK_L):
        ptr, m = _row_tile(base, l0, offs_l, offs_d, d_ok, L, row_stride)
        k = tl.load(K + ptr, mask=m, other=0.0).to(tl.float32)
        v = tl.load(V + ptr, mask=m, other=0.0).to(tl.float32)
        pk = tl.where(m, _phi(k), 0.0)  # phi(0) = 1, so padding must be zeroed explicitly
        kv += _mm(tl.trans(pk), v, USE_DOT, PREC)
        z += tl.sum(pk, axis=0)
    return kv, z


@triton.jit
def _la_fwd_kernel(
    Q,
    K,
    V,
    Out,
    L,
    H,
    D,
    eps,
    BLOCK_L: tl.constexpr,
    BLOCK_D: tl.constexpr,
    USE_DOT: tl.constexpr,
    PREC: tl.constexpr,
):
    n = tl.program_id(0)
    h = tl.program_id(1)
    row_stride = H * D
    base = n.to(tl.int64) * L * row_stride + h * D
    offs_l = tl.arange(0, BLOCK_L)
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < D
    kv, z = _kv_state(K, V, base, L, row_stride, offs_l, offs_d, d_ok, BLOCK_L, BLOCK_D, USE_DOT, PREC)
    for l0 in range(0, L, BLOCK_L):
        ptr, m = _row_tile(base, l0, offs_l, offs_d, d_ok, L, row_stride)
        q = tl.load(Q + ptr, mask=m, other=0.0).to(tl.float32)
        pq = tl.where(m, _phi(q), 0.0)
        num = _mm(pq, kv, USE_DOT, PREC)
        den = tl.sum(pq * z[None, :], axis=1) + eps
        tl.store(Out + ptr, (num / den[:, None]).to(Out.dtype.element_ty), mask=m)


@triton.jit
def _la_bwd_kernel(
    Q,
    K,
    V,
    DO,
    DQ,
    DK,
    DV,
    L,
    H,
    D,
    eps,
    BLOCK_L: tl.constexpr,
    BLOCK_D: tl.constexpr,
    USE_DOT: tl.constexpr,
    PREC: tl.constexpr,
):
    # With a = phi(q_l), num = a S, den = a.z + eps, out = num / den and g = dL/dout_l:
    #   gn = g / den,  gd = -(g . out) / den
    #   da = gn S^T + gd z                         -> dq = da * phi'(q)
    #   dS = sum_l a^T gn,  dz = sum_l gd a
    #   db_s = v_s dS^T + dz, dv_s = b_s dS (b = phi(k_s)) -> dk = db * phi'(k)
    n = tl.program_id(0)
    h = tl.program_id(1)
    row_stride = H * D
    base = n.to(tl.int64) * L * row_stride + h * D
    offs_l = tl.arange(0, BLOCK_L)
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < D
    kv, z = _kv_state(K, V, base, L, row_stride, offs_l, offs_d, d_ok, BLOCK_L, BLOCK_D, USE_DOT, PREC)
    kv_t = tl.trans(kv)
    ds = tl.zeros([BLOCK_D, BLOCK_D], dtype=tl.float32)
    dz = tl.zeros([BLOCK_D], dtype=tl.float32)
    for l0 in range(0, L, BLOCK_L):
        ptr, m = _row_tile(base, l0, offs_l, offs_d, d_ok, L, row_stride)
        q = tl.load(Q + ptr, mask=m, other=0.0).to(tl.float32)
        g = tl.load(DO + ptr, mask=m, other=0.0).to(tl.float32)
        a = tl.where(m, _phi(q), 0.0)
        den = tl.sum(a * z[None, :], axis=1) + eps
        out = _mm(a, kv, USE_DOT, PREC) / den[:, None]
        gn = g / den[:, None]
        gd = -tl.sum(g * out, axis=1) / den
        da = _mm(gn, kv_t, USE_DOT, PREC) + gd[:, None] * z[None, :]
        tl.store(DQ + ptr, (da * _dphi(q)).to(DQ.dtype.element_ty), mask=m)
        ds += _mm(tl.trans(a), gn, USE_DOT, PREC)
        dz += tl.sum(gd[:, None] * a, axis=0)
    ds_t = tl.trans(ds)
    for l0 in range(0, L, BLOCK_L):
        ptr, m = _row_tile(base, l0, offs_l, offs_d, d_ok, L, row_stride)
        k = tl.load(K + ptr, mask=m, other=0.0).to(tl.float32)
        v = tl.load(V + ptr, mask=m, other=0.0).to(tl.float32)
        b = tl.where(m, _phi(k), 0.0)
        db = _mm(v, ds_t, USE_DOT, PREC) + dz[None, :]
        tl.store(DK + ptr, (db * _dphi(k)).to(DK.dtype.element_ty), mask=m)
        tl.store(DV + ptr, _mm(b, ds, USE_DOT, PREC).to(DV.dtype.element_ty), mask=m)


def _launch_meta(q: torch.Tensor) -> dict:
    n, seq, heads, d = q.shape
    block_d = next_power_of_2(d)
    use_dot = block_d >= 16
    if use_dot:
        block_l = 64 if block_d <= 16 else 32
    else:
        # The broadcast product is BLOCK_L x BLOCK_D x BLOCK_D registers; keep it near 4096.
        block_l = max(16, min(64, 4096 // (block_d * block_d)))
    block_l = min(block_l, max(16, next_power_of_2(seq)))
    # fp32 inputs get exact fp32 dots; for 16-bit inputs tf32 is already more precise than the data.
    prec = "ieee" if q.dtype == torch.float32 else "tf32"
    return dict(BLOCK_L=block_l, BLOCK_D=block_d, USE_DOT=use_dot, PREC=prec, num_warps=4)


class LinearAttentionFunction(torch.autograd.Function):
    """Fused Triton linear attention with q, k and v gradients."""

    @staticmethod
    @ensure_contiguous
    def forward(ctx, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, eps: float) -> torch.Tensor:
        n, seq, heads, d = q.shape
        out = torch.empty_like(q)
        meta = _launch_meta(q)
        _la_fwd_kernel[(n, heads)](q, k, v, out, seq, heads, d, eps, **meta)
        ctx.save_for_backward(q, k, v)
        ctx.eps = eps
        ctx.meta = meta
        return out

    @staticmethod
    @ensure_contiguous
    def backward(ctx, dout: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        q, k, v = ctx.saved_tensors
        n, seq, heads, d = q.shape
        dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
        _la_bwd_kernel[(n, heads)](q, k, v, dout, dq, dk, dv, seq, heads, d, ctx.eps, **ctx.meta)
        return dq, dk, dv, None


def reference_linear_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Pure PyTorch ground truth, written as SED's ``LinearAttention`` (einsum form, no softmax).

    v is divided by the sequence length and the result multiplied back, as in the official code: it cancels
    exactly and only keeps S = phi(K)^T V inside the fp16 range.
    """
    seq = v.shape[1]
    q = F.elu(q) + 1
    k = F.elu(k) + 1
    v = v / seq
    kv = torch.einsum("nshd,nshv->nhdv", k, v)
    z = 1 / (torch.einsum("nlhd,nhd->nlh", q, k.sum(dim=1)) + eps)
    return torch.einsum("nlhd,nhdv,nlh->nlhv", q, kv, z) * seq


def linear_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, eps: float = 1e-6, *, backend: str | None = None
) -> torch.Tensor:
    """Multi-head linear attention, ``out_l = sum_s (phi(q_l).phi(k_s)) v_s / (sum_s phi(q_l).phi(k_s) + eps)``.

    Args:
        q: queries (N, L, H, D): N independent sequences of length L (classes in SED), H heads of width D.
        k: keys, same shape as ``q``.
        v: values, same shape as ``q``.
        eps: normaliser epsilon (SED: 1e-6).
        backend: ``None``/``"auto"``, ``"triton"`` or ``"reference"`` (see :func:`ovkernels.utils.use_triton`).

    Returns:
        (N, L, H, D) in the input dtype, differentiable in q, k and v.
    """
    if q.dim() != 4:
        raise ValueError(f"q must be (N, L, H, D), got shape {tuple(q.shape)}")
    if k.shape != q.shape or v.shape != q.shape:
        raise ValueError(f"q, k, v must have the same shape, got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    for name, t in (("q", q), ("k", k), ("v", v)):
        check_float(name, t)
        if t.dtype != q.dtype or t.device != q.device:
            raise ValueError("q, k and v must share dtype and device")
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    triton_path = use_triton(q, backend)
    if q.numel() == 0 or not triton_path:
        return reference_linear_attention(q, k, v, eps)
    return LinearAttentionFunction.apply(q, k, v, float(eps))

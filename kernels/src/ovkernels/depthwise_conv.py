"""Large-kernel depthwise 2-D convolution (SED FAM spatial fusion: ConvNeXt block, 9x9, padding k//2, bias).

Layout NCHW, odd kernels 1..13, fp32/fp16/bf16 with fp32 accumulation.

* forward: one program per (image-channel plane, block of flattened pixels); a loop over the k tap rows with the k
  columns unrolled, every tap a contiguous masked load of the plane shifted by ``(i - k//2) * W + (j - k//2)``, so
  loads stay coalesced and the halo is served from L1/L2.
* grad input: the same kernel with the taps flipped (a depthwise conv is its own adjoint up to the flip).
* grad weight / bias: a deterministic two-stage reduction. Program (c, g) walks the planes n = g, g + G, ... of
  channel c and holds a (taps x pixels) fp32 accumulator; partial sums per g are added by ``torch.sum``.
"""

import torch
import torch.nn.functional as F

from ovkernels.utils import cdiv, check_float, ensure_contiguous, next_power_of_2, num_sms, tl, triton, use_triton

MAX_KERNEL_SIZE = 13


@triton.jit
def _dwconv_fwd_kernel(
    X,
    W,
    Bias,
    Y,
    C,
    H,
    Wd,
    HW,
    K: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    FLIP: tl.constexpr,
    BLOCK: tl.constexpr,
):
    plane = tl.program_id(0)  # n * C + c
    tile = tl.program_id(1)
    c = plane % C
    offs = tile * BLOCK + tl.arange(0, BLOCK)
    valid = offs < HW
    h = offs // Wd
    w = offs % Wd
    base = plane.to(tl.int64) * HW
    w_base = c * (K * K)
    acc = tl.zeros([BLOCK], dtype=tl.float32)
    # Rows as a runtime loop, columns unrolled: unrolling all k*k taps let the compiler hoist every load and
    # spilled up to 4 KB per thread at 9x9 (ptxas -v on sm_90, `python -m ovkernels.aot`); k loads in flight suffice.
    for i in range(K):
        ih = h + (i - K // 2)
        row_ok = valid & (ih >= 0) & (ih < H)
        for j in tl.static_range(K):
            iw = w + (j - K // 2)
            m = row_ok & (iw >= 0) & (iw < Wd)
            # Flattened shift: the tap is the plane displaced by a constant, so the load is contiguous.
            xv = tl.load(X + base + offs + ((i - K // 2) * Wd + (j - K // 2)), mask=m, other=0.0).to(tl.float32)
            if FLIP:
                wv = tl.load(W + w_base + (K - 1 - i) * K + (K - 1 - j)).to(tl.float32)
            else:
                wv = tl.load(W + w_base + i * K + j).to(tl.float32)
            acc += xv * wv
    if HAS_BIAS:
        acc += tl.load(Bias + c).to(tl.float32)
    tl.store(Y + base + offs, acc.to(Y.dtype.element_ty), mask=valid)


@triton.jit
def _dwconv_bwd_weight_kernel(
    X,
    DY,
    DW_PART,
    DB_PART,
    N,
    C,
    H,
    Wd,
    HW,
    G,
    K: tl.constexpr,
    KK_PAD: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    BLOCK_P: tl.constexpr,
):
    c = tl.program_id(0)
    g = tl.program_id(1)
    taps = tl.arange(0, KK_PAD)
    tap_ok = taps < K * K
    di = taps // K - K // 2
    dj = taps % K - K // 2
    acc = tl.zeros([KK_PAD, BLOCK_P], dtype=tl.float32)
    acc_b = tl.zeros([BLOCK_P], dtype=tl.float32)
    for n in range(g, N, G):
        base = (n * C + c).to(tl.int64) * HW
        for p0 in range(0, HW, BLOCK_P):
            offs = p0 + tl.arange(0, BLOCK_P)
            valid = offs < HW
            h = offs // Wd
            w = offs % Wd
            dy = tl.load(DY + base + offs, mask=valid, other=0.0).to(tl.float32)
            ih = h[None, :] + di[:, None]
            iw = w[None, :] + dj[:, None]
            m = tap_ok[:, None] & valid[None, :] & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < Wd)
            # dW[c, i, j] = sum_{n, p} dY[n, c, p] * X[n, c, p + (i - k//2, j - k//2)]
            xs = tl.load(X + base + (offs[None, :] + di[:, None] * Wd + dj[:, None]), mask=m, other=0.0)
            acc += xs.to(tl.float32) * dy[None, :]
            acc_b += dy
    out = (g * C + c) * KK_PAD
    tl.store(DW_PART + out + taps, tl.sum(acc, axis=1))
    if HAS_BIAS:
        tl.store(DB_PART + g * C + c, tl.sum(acc_b, axis=0))


def _pixel_block(hw: int) -> int:
    """Largest power-of-two block (64..1024) that wastes at most ~10% of lanes on the last tile of a plane.

    SED's maps are 24^2 = 576 (-> 128), 48^2 = 2304 (-> 512) and 96^2 = 9216 (-> 1024).
    """
    if hw <= 64:
        return max(16, next_power_of_2(hw))
    best, best_eff = 64, 0.0
    for block in (1024, 512, 256, 128, 64):
        eff = hw / (cdiv(hw, block) * block)
        if eff >= 0.9:
            return block
        if eff > best_eff:
            best, best_eff = block, eff
    return best


def _conv_launch(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, flip: bool) -> torch.Tensor:
    n, c, h, w = x.shape
    k = weight.shape[-1]
    y = torch.empty_like(x)
    block = _pixel_block(h * w)
    grid = (n * c, cdiv(h * w, block))
    _dwconv_fwd_kernel[grid](
        x,
        weight,
        bias if bias is not None else weight,  # dummy pointer, never read when HAS_BIAS is False
        y,
        c,
        h,
        w,
        h * w,
        K=k,
        HAS_BIAS=bias is not None,
        FLIP=flip,
        BLOCK=block,
        num_warps=max(2, min(8, block // 128)),  # <= 4 pixels per thread: ~70 registers, no spills on sm_90
    )
    return y


def _weight_grad_launch(
    x: torch.Tensor, dy: torch.Tensor, k: int, with_bias: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    n, c, h, w = x.shape
    kk_pad = next_power_of_2(k * k)
    block_p = max(16, 4096 // kk_pad)
    # Enough (channel, group) programs to fill the GPU about four times over; a handful on the interpreter.
    groups = max(1, min(n, cdiv(4 * num_sms(x.device), c)))
    dw_part = torch.empty((groups, c, kk_pad), device=x.device, dtype=torch.float32)
    db_part = torch.empty((groups, c), device=x.device, dtype=torch.float32) if with_bias else dw_part
    _dwconv_bwd_weight_kernel[(c, groups)](
        x,
        dy,
        dw_part,
        db_part,
        n,
        c,
        h,
        w,
        h * w,
        groups,
        K=k,
        KK_PAD=kk_pad,
        HAS_BIAS=with_bias,
        BLOCK_P=block_p,
        num_warps=8,  # the (taps x pixels) accumulator is 4096 fp32: 16 per thread
    )
    dw = dw_part.sum(0)[:, : k * k].reshape(c, 1, k, k)
    db = db_part.sum(0) if with_bias else None
    return dw, db


class DepthwiseConv2dFunction(torch.autograd.Function):
    """Triton depthwise conv with input, weight and bias gradients."""

    @staticmethod
    @ensure_contiguous
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        y = _conv_launch(x, weight, bias, flip=False)
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        ctx.bias_dtype = bias.dtype if bias is not None else None
        return y

    @staticmethod
    @ensure_contiguous
    def backward(ctx, dy: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad
        dx = _conv_launch(dy, weight, None, flip=True) if need_x else None
        dw = db = None
        with_bias = ctx.has_bias and need_b  # a frozen bias needs no reduction
        if need_w or with_bias:
            dw, db = _weight_grad_launch(x, dy, weight.shape[-1], with_bias=with_bias)
            dw = dw.to(weight.dtype) if need_w else None
            db = db.to(ctx.bias_dtype) if with_bias else None
        return dx, dw, db


def reference_depthwise_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """Pure PyTorch ground truth: ``F.conv2d(x, weight, bias, padding=k // 2, groups=C)``."""
    return F.conv2d(x, weight, bias, padding=weight.shape[-1] // 2, groups=x.shape[1])


def _check_args(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
    if x.dim() != 4:
        raise ValueError(f"x must be (N, C, H, W), got shape {tuple(x.shape)}")
    c = x.shape[1]
    if weight.dim() != 4 or weight.shape[0] != c or weight.shape[1] != 1 or weight.shape[2] != weight.shape[3]:
        raise ValueError(f"weight must be (C, 1, k, k) with C={c}, got shape {tuple(weight.shape)}")
    k = weight.shape[-1]
    if k % 2 == 0 or not 1 <= k <= MAX_KERNEL_SIZE:
        raise ValueError(f"kernel size must be odd and <= {MAX_KERNEL_SIZE}, got {k}")
    if bias is not None and tuple(bias.shape) != (c,):
        raise ValueError(f"bias must be ({c},), got shape {tuple(bias.shape)}")
    check_float("x", x)
    tensors = [weight] + ([bias] if bias is not None else [])
    for t in tensors:
        if t.dtype != x.dtype or t.device != x.device:
            raise ValueError(f"weight and bias must match x ({x.dtype}, {x.device}), got ({t.dtype}, {t.device})")


def depthwise_conv2d(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, *, backend: str | None = None
) -> torch.Tensor:
    """Depthwise 2-D convolution with 'same' padding, as in SED's ConvNeXt block (``groups=C``, padding k//2).

    Args:
        x: input (N, C, H, W), fp32/fp16/bf16.
        weight: (C, 1, k, k) with odd k <= 13, same dtype and device as ``x``.
        bias: optional (C,).
        backend: ``None``/``"auto"``, ``"triton"`` or ``"reference"`` (see :func:`ovkernels.utils.use_triton`).

    Returns:
        (N, C, H, W), differentiable in ``x``, ``weight`` and ``bias``.
    """
    _check_args(x, weight, bias)
    triton_path = use_triton(x, backend)
    if x.numel() == 0 or not triton_path:
        return reference_depthwise_conv2d(x, weight, bias)
    return DepthwiseConv2dFunction.apply(x, weight, bias)

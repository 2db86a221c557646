"""SED gradual fusion decoder (the official `Aggregator`; SED paper, Sec. 3.2) with per-image category early
rejection (CER, Sec. 3.3).

Two entry points compute the same function; the caller picks one, the grad mode does not:

* `Aggregator.forward` (training, and any call that may need gradients): batched over B*T rows like the official
  code, each layer's maths in its block (`sed.layers.Up.forward`). The skip guidance is never repeated T times:
  DoubleConv's first conv is linear in its input, so its skip part is one conv per image broadcast over the classes.
* `Aggregator.infer` and `Aggregator.forward_cer` (inference, no autograd; `SED.predict` uses them): per image,
  classes (and, for the class attention, pixels) processed in chunks of a few MB on CPU worker threads
  (`sed._parallel`), with channels_last convs, in-place activations and the transposed-conv ``up`` folded into the
  following 3x3 conv; the blocks' fast methods (`Up.fam_`, `Up.fuse_sfm`, `Up.sfm_chunk`) hold that maths. CER
  scores stage 1 with ``head0 o conv1`` fused into one 80 -> 1 conv, and runs conv1, the cost-guidance chain
  K1 -> K2 -> K3 and the skip terms only for the classes that survive each stage.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from sed._parallel import ChunkRunner
from sed.cer import scatter_probabilities, select_categories
from sed.layers import Up, correlate_one_channel, fold_up_into_conv, head_logits

# fold_up_into_conv is the SFM maths of sed.layers, re-exported here for `sed.fold_up_into_conv`.
__all__ = ["Aggregator", "fold_up_into_conv"]

_CL = torch.channels_last


def _corner_window(c: torch.Tensor, r: int, col: int) -> torch.Tensor:
    """The 9x9 window of C zero-padded by 4 centred on pixel (r, col) of c (n, P, h, w): (n, P, 9, 9)."""
    h, w = c.shape[-2:]
    patch = c[:, :, max(0, r - 4) : min(h, r + 5), max(0, col - 4) : min(w, col + 5)]
    return F.pad(patch, (max(0, 4 - col), max(0, col + 5 - w), max(0, 4 - r), max(0, r + 5 - h)))


class Aggregator(nn.Module):
    """The SED decoder: cost embedding, three FAM+SFM layers, auxiliary heads and the final head.

    Attribute names match the official `Aggregator`; inside each layer the released code's `double_conv` / `MLP`
    sub-layer names are mapped by `sed.layers.rename_official_key`.

    Args:
        num_templates: P, the cost-map channels (80 in the released models; also the first cost-guidance input).
        hidden_dim: width of the cost embedding and of decoder1 (128).
        decoder_dims: output widths of decoder1..3 (64, 32, 16).
        guidance_dims: channels of the encoder skip features res4, res3, res2.
        guidance_proj_dims: skip / cost-guidance widths per layer (32, 16, 8).
        num_heads: heads of the class-level linear attention.
        kernel_sizes: depthwise kernel of each layer's ConvNeXt block (9, 9, 9).
        pooling_train: class-attention average pooling in training mode (official train config: 2).
        pooling_eval: pooling in eval mode (official eval.sh: 1).
        layer_scale_init: ConvNeXt `gamma` initial value (official: 1.0).
        chunk_elems: inference chunk budget in elements of the largest intermediate; None = 512K on CPU (fits
            the caches better), 64M on accelerators (fewer launches).
        workers: CPU worker threads of the inference path; None = ``torch.get_num_threads()`` at call time.
    """

    def __init__(
        self,
        num_templates: int = 80,
        hidden_dim: int = 128,
        decoder_dims: Sequence[int] = (64, 32, 16),
        guidance_dims: Sequence[int] = (512, 256, 128),
        guidance_proj_dims: Sequence[int] = (32, 16, 8),
        num_heads: int = 4,
        kernel_sizes: Sequence[int] = (9, 9, 9),
        pooling_train: int = 2,
        pooling_eval: int = 1,
        layer_scale_init: float = 1.0,
        chunk_elems: int | None = None,
        workers: int | None = None,
    ) -> None:
        super().__init__()
        if not (len(decoder_dims) == len(guidance_dims) == len(guidance_proj_dims) == len(kernel_sizes) == 3):
            raise ValueError("the SED decoder has exactly three layers: give three values per per-layer setting")
        self.num_templates = num_templates
        self.pooling_train = pooling_train
        self.pooling_eval = pooling_eval
        self.chunk_elems = chunk_elems
        self.workers = workers
        self.conv1 = nn.Conv2d(num_templates, hidden_dim, kernel_size=7, stride=1, padding=3)
        self.decoder_guidance_projection = nn.ModuleList(
            nn.Sequential(nn.Conv2d(g, p, kernel_size=3, stride=1, padding=1), nn.ReLU(inplace=True))
            for g, p in zip(guidance_dims, guidance_proj_dims, strict=True)
        )
        # The official chain is hard-coded (80, 32, 16): P templates in, then each layer's guidance width. The ReLUs
        # run in place (same function; a conv's backward does not need its output).
        corr_dims = (num_templates, *guidance_proj_dims[:-1])
        self.decoder_corr_guidance_projection = nn.ModuleList(
            nn.Sequential(nn.ConvTranspose2d(c, p, kernel_size=2, stride=2), nn.ReLU(inplace=True))
            for c, p in zip(corr_dims, guidance_proj_dims, strict=True)
        )
        in_dims = (hidden_dim, *decoder_dims[:-1])
        self.decoder1 = Up(
            in_dims[0], decoder_dims[0], guidance_proj_dims[0], kernel_sizes[0], num_heads, layer_scale_init
        )
        self.decoder2 = Up(
            in_dims[1], decoder_dims[1], guidance_proj_dims[1], kernel_sizes[1], num_heads, layer_scale_init
        )
        self.decoder3 = Up(
            in_dims[2], decoder_dims[2], guidance_proj_dims[2], kernel_sizes[2], num_heads, layer_scale_init
        )
        self.head0 = nn.Conv2d(hidden_dim, 1, kernel_size=3, stride=1, padding=1)
        self.head1 = nn.Conv2d(decoder_dims[0], 1, kernel_size=3, stride=1, padding=1)
        self.head2 = nn.Conv2d(decoder_dims[1], 1, kernel_size=3, stride=1, padding=1)
        self.head = nn.Conv2d(decoder_dims[2], 1, kernel_size=3, stride=1, padding=1)

    # ------------------------------------------------------------------------------------------------ helpers
    @property
    def layers(self) -> tuple[Up, Up, Up]:
        return (self.decoder1, self.decoder2, self.decoder3)

    @property
    def aux_heads(self) -> tuple[nn.Conv2d, nn.Conv2d, nn.Conv2d]:
        return (self.head0, self.head1, self.head2)

    @property
    def pooling(self) -> int:
        return self.pooling_train if self.training else self.pooling_eval

    def project_guidance(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Skip projections G1..G3 (conv3x3 + ReLU) of the detached res4, res3, res2 features."""
        if len(features) != 3:
            raise ValueError(f"expected 3 skip features (res4, res3, res2), got {len(features)}")
        return [proj(f) for proj, f in zip(self.decoder_guidance_projection, features, strict=True)]

    def _check_inputs(self, cost: torch.Tensor, features: Sequence[torch.Tensor]) -> None:
        if cost.dim() != 5:
            raise ValueError(f"cost map must be (B, P, T, h, w), got shape {tuple(cost.shape)}")
        if cost.shape[1] != self.num_templates:
            raise ValueError(
                f"cost map has {cost.shape[1]} template channels but the decoder was built for P="
                f"{self.num_templates}; use a template set of that size"
            )
        h, w = cost.shape[-2:]
        for i, f in enumerate(features):
            if f.shape[0] != cost.shape[0] or tuple(f.shape[-2:]) != (h * 2 ** (i + 1), w * 2 ** (i + 1)):
                raise ValueError(
                    f"skip feature {i} has shape {tuple(f.shape)}; expected batch {cost.shape[0]} and spatial size "
                    f"{(h * 2 ** (i + 1), w * 2 ** (i + 1))} for a {h}x{w} cost map"
                )

    # ------------------------------------------------------------------------------------- public forwards
    def forward(
        self, cost: torch.Tensor, features: Sequence[torch.Tensor], *, with_aux: bool = True
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Full decoder on every class, batched, autograd-capable (the training path, in any grad mode).

        Args:
            cost: cosine cost map (B, P, T, h, w).
            features: detached encoder features [res4, res3, res2] at 2x, 4x, 8x the cost-map size.
            with_aux: also return the auxiliary logits (computed either way: training supervises them).

        Returns:
            (final logits (B, T, 8h, 8w), [aux0 (B, T, h, w), aux1 (B, T, 2h, 2w), aux2 (B, T, 4h, 4w)] or []).
        """
        self._check_inputs(cost, features)
        bsz, p, t, h, w = cost.shape
        corr = cost.transpose(1, 2).reshape(bsz * t, p, h, w)
        x = self.conv1(corr)
        # The auxiliary heads train only themselves (SED paper, Sec. 3.3): their inputs are detached.
        aux = [self.head0(x.detach())]
        guidance = self.project_guidance(features)
        k = corr
        for i, layer in enumerate(self.layers):
            k = self.decoder_corr_guidance_projection[i](k)
            x = layer(x.unflatten(0, (bsz, t)), guidance[i], k.unflatten(0, (bsz, t)), self.pooling).flatten(0, 1)
            if i < 2:
                aux.append(self.aux_heads[i + 1](x.detach()))
        logits = self.head(x)
        if not with_aux:
            aux = []
        return logits.view(bsz, t, *logits.shape[-2:]), [a.view(bsz, t, *a.shape[-2:]) for a in aux]

    @torch.no_grad()
    def infer(
        self, cost: torch.Tensor, features: Sequence[torch.Tensor], *, with_aux: bool = False
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """`forward` without autograd through the fast inference path (per image, chunked, fused).

        Same arguments and outputs as `forward`; the auxiliary logits are computed only when `with_aux` is set.
        """
        self._check_inputs(cost, features)
        outs = [
            self._infer_image(cost[b], [f[b : b + 1] for f in features], k=None, keep_aux=with_aux)
            for b in range(cost.shape[0])
        ]
        logits = torch.stack([o[0] for o in outs])
        aux = [torch.stack([o[1][i] for o in outs]) for i in range(3)] if with_aux else []
        return logits, aux

    @torch.no_grad()
    def forward_cer(
        self, cost: torch.Tensor, features: Sequence[torch.Tensor], k: int = 8
    ) -> tuple[torch.Tensor, dict[str, list[list[int]]]]:
        """Inference with category early rejection, per image.

        Before decoder1, decoder2 and decoder3 the auxiliary head of the previous stage scores the surviving
        classes; each image keeps the union over its pixels of the per-pixel top-k (`ovkernels`).

        Args:
            cost: (B, P, T, h, w).
            features: [res4, res3, res2].
            k: classes kept per pixel (>= 1, the paper's SED-fast uses 8); k >= T keeps everything and equals
                the plain decoder.

        Returns:
            probs (B, T, 8h, 8w) with rejected classes exactly 0, and stats {"kept": [[T1, T2, T3] per image]}.
        """
        self._check_inputs(cost, features)
        if isinstance(k, bool) or int(k) != k or k < 1:
            raise ValueError(f"k must be an integer >= 1, got {k!r}")
        bsz, _, t = cost.shape[:3]
        h, w = cost.shape[-2:]
        probs = cost.new_zeros(bsz, t, 8 * h, 8 * w)
        kept: list[list[int]] = []
        for b in range(bsz):
            logits, _, ids, counts = self._infer_image(
                cost[b], [f[b : b + 1] for f in features], k=int(k), keep_aux=False
            )
            scatter_probabilities(logits, ids, t, out=probs[b])
            kept.append(counts)
        return probs, {"kept": kept}

    # ------------------------------------------------------------------------------------ inference path
    def _cost_embed(
        self, run: ChunkRunner, rows: torch.Tensor, with_head: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """conv1 (and head0) on cost rows (T, P, h, w) -> X0 (T, D, h, w) channels_last, A0 (T, h, w) or None."""
        t, _, h, w = rows.shape
        hidden = self.conv1.out_channels
        x = torch.empty((t, hidden, h, w), dtype=rows.dtype, device=rows.device, memory_format=_CL)
        a0 = torch.empty((t, h, w), dtype=rows.dtype, device=rows.device) if with_head else None

        def chunk(i: int, j: int) -> None:
            x[i:j] = self.conv1(rows[i:j].contiguous(memory_format=_CL))
            if a0 is not None:
                a0[i:j] = head_logits(self.head0, x[i:j])

        run.map(chunk, run.split(t, hidden * h * w))
        return x, a0

    def _head0_kernel(self, taps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """head0 o conv1 restricted to the head taps in `taps` (3x3 0/1): a (1, P, 9, 9) kernel and its bias."""
        w0 = self.head0.weight * taps
        # Full convolution of the 7x7 and 3x3 kernels, summed over the 128 hidden channels.
        kernel = F.conv2d(self.conv1.weight.transpose(0, 1), w0.flip(-1, -2), padding=2).transpose(0, 1)
        return kernel, (w0[0].sum((1, 2)) * self.conv1.bias).sum()

    def _aux0(self, run: ChunkRunner, rows: torch.Tensor) -> torch.Tensor:
        """A0 = head0(conv1(C)) for all classes without conv1's 128 channels (CER stage 1).

        Both are linear convs, so head0 o conv1 is one 80 -> 1 conv with a 9x9 kernel (70x fewer operations). The
        only catch is head0's zero padding of X0: at border pixels the fused kernel also counts taps that fall on
        X0's padding; they are subtracted with edge kernels (inclusion-exclusion at the corners). Exact up to float
        rounding.
        """
        t, _, h, w = rows.shape
        ones = torch.ones(3, 3, dtype=rows.dtype, device=rows.device)
        row_taps = [torch.zeros_like(ones).index_fill_(0, torch.tensor([i], device=rows.device), 1) for i in (0, 2)]
        col_taps = [torch.zeros_like(ones).index_fill_(1, torch.tensor([i], device=rows.device), 1) for i in (0, 2)]
        full, const = self._head0_kernel(ones)
        const = const + self.head0.bias[0]
        top, bottom = (self._head0_kernel(m) for m in row_taps)
        left, right = (self._head0_kernel(m) for m in col_taps)
        corners = [
            (r, c, self._head0_kernel(rm * cm))
            for r, rm in ((0, row_taps[0]), (h - 1, row_taps[1]))
            for c, cm in ((0, col_taps[0]), (w - 1, col_taps[1]))
        ]
        a0 = torch.empty((t, h, w), dtype=rows.dtype, device=rows.device)
        pad = (4, 4)

        def chunk(i: int, j: int) -> None:
            c = rows[i:j].contiguous(memory_format=_CL)
            # One-output-channel convs as GEMM + shifted adds (`correlate_one_channel`); each edge term only needs
            # the 5 rows / columns of C next to its edge (the rest of its 9x9 window is padding or out of reach).
            a = correlate_one_channel(c, full, pad).add_(const)
            a[:, 0, :] -= correlate_one_channel(c[:, :, :5], top[0], pad)[:, 0] + top[1]
            a[:, h - 1, :] -= correlate_one_channel(c[:, :, -5:], bottom[0], pad)[:, -1] + bottom[1]
            a[:, :, 0] -= correlate_one_channel(c[:, :, :, :5], left[0], pad)[:, :, 0] + left[1]
            a[:, :, w - 1] -= correlate_one_channel(c[:, :, :, -5:], right[0], pad)[:, :, -1] + right[1]
            for r, col, (kernel, bias) in corners:  # counted by a row and a column edge: add back once
                a[:, r, col] += (_corner_window(c, r, col) * kernel).sum((1, 2, 3)) + bias
            a0[i:j] = a

        # Larger chunks than the cache budget: this stage is cheap per class but issues ~400 small ops per chunk.
        run.map(chunk, run.split(t, 81 * h * w // 16))
        return a0

    def _sfm_(
        self,
        run: ChunkRunner,
        index: int,
        x: torch.Tensor,
        k_prev: torch.Tensor,
        skip: torch.Tensor,
        keep: bool,
        with_head: bool = True,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        """Cost guidance + the layer's SFM + the next head for one image, over row chunks.

        Args:
            run: the chunk runner.
            index: layer index 0..2.
            x: (n, C_in, h, w) FAM output, channels_last.
            k_prev: (n, C_k, h, w) the previous cost guidance rows (the cost map itself for layer 0).
            skip: (1, G, 2h, 2w) projected skip guidance of this image.
            keep: whether to return the layer output and this layer's cost guidance (for the next layer).
            with_head: whether to run the next head (the auxiliary ones are only needed for CER or `with_aux`).

        Returns:
            (output (n, C_out, 2h, 2w) or None, K (n, G, 2h, 2w) or None, head logits (n, 2h, 2w) or None).
        """
        layer = self.layers[index]
        head = self.head if index == 2 else self.aux_heads[index + 1]
        corr_projection = self.decoder_corr_guidance_projection[index]
        n, _, h, w = x.shape
        size = (2 * h, 2 * w)
        fused = layer.fuse_sfm(skip, size)
        c_out, g = layer.conv.conv2.out_channels, layer.guidance_channels
        dtype, device = x.dtype, x.device
        out = torch.empty((n, c_out, *size), dtype=dtype, device=device, memory_format=_CL) if keep else None
        k_out = torch.empty((n, g, *size), dtype=dtype, device=device, memory_format=_CL) if keep else None
        logits = torch.empty((n, *size), dtype=dtype, device=device) if with_head else None

        def chunk(i: int, j: int) -> None:
            kc = corr_projection(k_prev[i:j].contiguous(memory_format=_CL))
            if k_out is not None:
                k_out[i:j] = kc
            z = layer.sfm_chunk(x[i:j], kc, fused)
            if out is not None:
                out[i:j] = z
            if logits is not None:
                logits[i:j] = head_logits(head, z)

        run.map(chunk, run.split(n, 2 * max(c_out, g) * size[0] * size[1]))
        return out, k_out, logits

    def _infer_image(
        self, cost: torch.Tensor, features: Sequence[torch.Tensor], k: int | None, keep_aux: bool
    ) -> tuple:
        """Decoder for one image (cost (P, T, h, w)); with k, rejects classes before each layer."""
        p, t, h, w = cost.shape
        ids = torch.arange(t, device=cost.device)
        counts: list[int] = []
        pool = self.pooling
        guidance = self.project_guidance(features)  # outside the runner: these convs use every intra-op thread
        with ChunkRunner(cost.device, self.workers, self.chunk_elems) as run:
            rows = cost.transpose(0, 1)  # (T, P, h, w) view
            if k is None:
                x, a0 = self._cost_embed(run, rows, with_head=keep_aux)
                aux = [a0]
            else:
                # Stage-1 rejection needs A0 for every class but X0 only for the survivors.
                a0 = self._aux0(run, rows)
                idx, (rows,) = select_categories(a0, k, rows)
                ids = ids[idx]
                counts.append(int(ids.numel()))
                x, _ = self._cost_embed(run, rows, with_head=False)
                aux = []
            k_prev = rows
            for i, layer in enumerate(self.layers):
                if k is not None and i > 0:
                    # Rejection before decoder2 / decoder3 uses head1 / head2 of the previous layer.
                    idx, (x, k_prev) = select_categories(aux[-1], k, x, k_prev)
                    ids = ids[idx]
                    counts.append(int(ids.numel()))
                x = layer.fam_(x, pool, run)
                # head1 / head2 only feed CER and the aux outputs; the final head always runs.
                with_head = i == 2 or k is not None or keep_aux
                x, k_prev, logits = self._sfm_(run, i, x, k_prev, guidance[i], keep=i < 2, with_head=with_head)
                aux.append(logits)
        logits = aux.pop()
        if k is not None:
            return logits, aux, ids, counts
        return logits, aux if keep_aux else None

"""A straightforward re-implementation of the official SED decoder forward (SED paper, Sec. 3.2-3.3), for
equivalence tests.

It runs on the parameters of `sed.Aggregator` (the official module names, except inside a layer:
``conv.double_conv.0/1/3/4`` are ``conv.conv1/norm1/conv2/norm2`` and ``attention.MLP.0/2`` are
``attention.fc1/fc2``) but follows the official code step by step, with functional ops rather than the package's
block forwards: cost rearranged to (B*T, P, h, w), the skip guidance repeated T times and concatenated with the
upsampled features and the cost guidance, the class attention with the official rearranges and the v / L fp16
guard, and the fast (CER) path with nested boolean masks (batch 1 only, like the official code). tests/sed,
tests/kernels and the benchmarks import this one copy (the root pytest config puts this folder on ``sys.path``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def cnext(m, x):
    inp = x
    x = F.conv2d(x, m.dwconv.weight, m.dwconv.bias, padding=m.dwconv.padding, groups=x.shape[1])
    x = x.permute(0, 2, 3, 1)
    x = F.layer_norm(x, (x.shape[-1],), m.norm.weight, m.norm.bias, 1e-6)
    x = m.pwconv2(F.gelu(m.pwconv1(x)))
    x = m.gamma * x
    return inp + x.permute(0, 3, 1, 2)


def linear_attention(a, x):
    heads = a.num_heads
    n, length, c = x.shape
    q = a.q(x).view(n, length, heads, c // heads)
    k = a.k(x).view(n, length, heads, c // heads)
    v = a.v(x).view(n, length, heads, c // heads)
    q = F.elu(q) + 1
    k = F.elu(k) + 1
    v = v / length
    kv = torch.einsum("nshd,nshv->nhdv", k, v)
    z = 1 / (torch.einsum("nlhd,nhd->nlh", q, k.sum(dim=1)) + 1e-6)
    out = torch.einsum("nlhd,nhdv,nlh->nlhv", q, kv, z) * length
    return out.reshape(n, length, c)


def mlp(m, x):
    """Official ``MLP = Sequential(Linear(C, 4C), ReLU, Linear(4C, C))``."""
    return F.linear(F.relu(F.linear(x, m.fc1.weight, m.fc1.bias)), m.fc2.weight, m.fc2.bias)


def double_conv(m, x):
    """Official ``DoubleConv``: (Conv3x3 no bias -> GroupNorm(C_out // 16, eps 1e-5) -> ReLU) x 2."""
    groups = max(1, m.conv1.weight.shape[0] // 16)  # the tiny test presets have fewer than 16 channels
    x = F.relu(F.group_norm(F.conv2d(x, m.conv1.weight, padding=1), groups, m.norm1.weight, m.norm1.bias, 1e-5))
    return F.relu(F.group_norm(F.conv2d(x, m.conv2.weight, padding=1), groups, m.norm2.weight, m.norm2.bias, 1e-5))


def class_attention(m, x, pool):
    b, c, t, h, w = x.shape
    xp = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
    if pool > 1:
        xp = F.avg_pool2d(xp, pool)
    hp, wp = xp.shape[-2:]
    xp = xp.reshape(b, t, c, hp, wp).permute(0, 3, 4, 1, 2).reshape(b * hp * wp, t, c)
    xp = xp + linear_attention(m.attention, m.norm1(xp))
    xp = xp + mlp(m, m.norm2(xp))
    xp = xp.reshape(b, hp, wp, t, c).permute(0, 3, 4, 1, 2).reshape(b * t, c, hp, wp)
    xp = F.interpolate(xp, size=(h, w), mode="bilinear", align_corners=True)
    xp = xp.reshape(b, t, c, h, w).permute(0, 2, 1, 3, 4)
    return x + xp


def up_layer(m, x, guidance, corr_guidance, batch, pool):
    x = cnext(m.cnext, x)
    bt, c, h, w = x.shape
    x = x.reshape(batch, bt // batch, c, h, w).permute(0, 2, 1, 3, 4)
    x = class_attention(m.attention, x, pool)
    x = x.permute(0, 2, 1, 3, 4).reshape(bt, c, h, w)
    x = m.up(x)
    t = x.size(0) // guidance.size(0)
    guidance = guidance.unsqueeze(1).expand(-1, t, -1, -1, -1).reshape(bt, *guidance.shape[1:])
    x = torch.cat([x, guidance, corr_guidance], dim=1)
    return double_conv(m.conv, x)


def prepare(agg, cost, features):
    """conv1 features, the three skip-guidance projections and the cost guidance K1..K3 (the decoder's inputs)."""
    b, p, t, h, w = cost.shape
    corr = cost.permute(0, 2, 1, 3, 4).reshape(b * t, p, h, w)
    x = agg.conv1(corr)
    guidance = [proj(f) for proj, f in zip(agg.decoder_guidance_projection, features, strict=True)]
    k1 = agg.decoder_corr_guidance_projection[0](corr)
    k2 = agg.decoder_corr_guidance_projection[1](k1)
    k3 = agg.decoder_corr_guidance_projection[2](k2)
    return x, guidance, (k1, k2, k3)


def official_forward(agg, cost, features, pool=1):
    """(Y, A0, A1, A2) logits, each (B, T, H_i, W_i)."""
    b, _, t = cost.shape[:3]
    x, guidance, ks = prepare(agg, cost, features)
    a0 = agg.head0(x.detach())
    x = up_layer(agg.decoder1, x, guidance[0], ks[0], b, pool)
    a1 = agg.head1(x.detach())
    x = up_layer(agg.decoder2, x, guidance[1], ks[1], b, pool)
    a2 = agg.head2(x.detach())
    x = up_layer(agg.decoder3, x, guidance[2], ks[2], b, pool)
    y = agg.head(x)

    def unfold(z):
        return z.reshape(b, t, *z.shape[-2:])

    return unfold(y), unfold(a0), unfold(a1), unfold(a2)


def official_final(agg, cost, features, pool=1):
    """The final logits only (B, T, H, W): the official decoder without the auxiliary heads (inference timing)."""
    b, _, t = cost.shape[:3]
    x, guidance, ks = prepare(agg, cost, features)
    for stage, layer in enumerate((agg.decoder1, agg.decoder2, agg.decoder3)):
        x = up_layer(layer, x, guidance[stage], ks[stage], b, pool)
    y = agg.head(x)
    return y.reshape(b, t, *y.shape[-2:])


def valid_idx(logits, k):
    """Official: argsort per pixel, first k class ids of every pixel, bincount, > 0."""
    t = logits.shape[1]
    order = logits.argsort(dim=1, descending=True)[:, :k]
    return torch.bincount(order.flatten(), minlength=t) > 0


def official_fast_forward(agg, cost, features, k, pool=1):
    """Official `fast_conv_decoder` for batch 1: (probs (1, T, H, W), masks m0, m1, m2)."""
    b, _, t = cost.shape[:3]
    assert b == 1, "the official fast path only works for batch 1"
    x, guidance, (k1, k2, k3) = prepare(agg, cost, features)
    a0 = agg.head0(x).reshape(1, t, *x.shape[-2:])
    m0 = valid_idx(a0, k)
    x = up_layer(agg.decoder1, x[m0], guidance[0], k1[m0], 1, pool)
    a1 = agg.head1(x).reshape(1, -1, *x.shape[-2:])
    m1 = valid_idx(a1, k)
    x = up_layer(agg.decoder2, x[m1], guidance[1], k2[m0][m1], 1, pool)
    a2 = agg.head2(x).reshape(1, -1, *x.shape[-2:])
    m2 = valid_idx(a2, k)
    x = up_layer(agg.decoder3, x[m2], guidance[2], k3[m0][m1][m2], 1, pool)
    y = agg.head(x).reshape(1, -1, *x.shape[-2:])
    m12 = m1.clone()
    m12[m1] = m2
    m = m0.clone()
    m[m0] = m12
    out = torch.zeros(1, t, *y.shape[-2:])
    out[:, m] = y.sigmoid()
    return out, (m0, m1, m2)

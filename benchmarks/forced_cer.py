"""Fair CER rows for the SED benchmarks: both providers keep the same number of classes per decoder stage.

With random heads, each provider's own top-k rule keeps arbitrary sets; both are replaced here by "the n classes with
the highest maximum logit", n = 48 / 32 / 24 before decoder 1 / 2 / 3 (realistic sizes for A-150 with k = 8).
"""

from __future__ import annotations

import torch

FORCED = (48, 32, 24)
"""Classes kept before decoder 1 / 2 / 3 in the CER rows, for both providers."""


class ForcedSelection:
    """The replacement top-k rule; it cycles through the three stages of one forward pass."""

    def __init__(self) -> None:
        self.stage = 0

    def mask(self, logits: torch.Tensor) -> torch.Tensor:
        t = logits.shape[1]
        n = min(FORCED[self.stage % 3], t)
        self.stage += 1
        keep = torch.zeros(1, t, dtype=torch.bool)
        keep[0, logits.flatten(2).amax(-1)[0].topk(n).indices] = True
        return keep

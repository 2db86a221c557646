"""A fake CLIP text side for the text-encoding tests (tests/ovcore, tests/clipzss): no open_clip model needed.

The folder is on the pytest ``pythonpath`` (root pyproject.toml).
"""

from __future__ import annotations

import torch
from torch import nn

DIM = 8
"""Embedding width of :class:`FakeTextModel`."""


class FakeTokenizer:
    """Maps every distinct prompt to its own id, so the fake encoder can look prompts up."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}

    def __call__(self, prompts: list[str]) -> torch.Tensor:
        return torch.tensor([[self.ids.setdefault(p, len(self.ids))] for p in prompts], dtype=torch.long)


class FakeTextModel(nn.Module):
    """``encode_text`` returns a fixed random vector per prompt id; counts its calls and the prompts it encodes.

    Args:
        dim: Embedding width.
        rows: How many distinct prompts it can encode.
        seed: Seed of the vectors.
        scaled: Scale each vector by ``1 + id % 5`` (non-unit norms, so normalisation is tested).
    """

    def __init__(self, dim: int = DIM, rows: int = 512, seed: int = 1, scaled: bool = True) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.randn(rows, dim, generator=torch.Generator().manual_seed(seed)))
        self.scaled = scaled
        self.calls = 0
        self.prompts = 0

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.prompts += tokens.shape[0]
        ids = tokens[:, 0]
        out = self.table[ids]
        return out * (1.0 + ids[:, None] % 5) if self.scaled else out

    def embed(self, tokenizer: FakeTokenizer, prompt: str) -> torch.Tensor:
        """The raw vector of one prompt."""
        return self.encode_text(tokenizer([prompt]))[0].detach()

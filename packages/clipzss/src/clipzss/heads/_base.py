"""Head registry and the conv-norm-act block shared by the heads."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

__all__ = ["ConvNormAct", "create_head", "list_heads", "make_norm", "register_head"]

_HEADS: dict[str, type[nn.Module]] = {}
T = TypeVar("T", bound=type[nn.Module])


def register_head(name: str) -> Callable[[T], T]:
    """Class decorator: register a head class under ``name``."""

    def wrap(cls: T) -> T:
        _HEADS[name] = cls
        return cls

    return wrap


def list_heads() -> list[str]:
    """Registered head names."""
    return sorted(_HEADS)


def create_head(name: str, in_channels: list[int], out_channels: int, **kwargs: Any) -> nn.Module:
    """Build a registered head.

    Args:
        name: "upernet" or "segformer".
        in_channels: Channels of the four backbone levels (strides 4, 8, 16, 32).
        out_channels: C (the text-embedding dimension).
        **kwargs: Head options (``channels``, ``dropout``, ``norm``).
    """
    if name not in _HEADS:
        raise ValueError(f"unknown head {name!r}; available: {list_heads()}")
    return _HEADS[name](in_channels, out_channels, **kwargs)


def make_norm(kind: str, channels: int) -> nn.Module:
    """BatchNorm ("bn", SyncBN under DDP with --sync-bn) or GroupNorm(32) ("gn")."""
    if kind == "bn":
        return nn.BatchNorm2d(channels)
    if kind == "gn":
        return nn.GroupNorm(min(32, channels), channels)
    raise ValueError(f"unknown norm {kind!r} (expected 'bn' or 'gn')")


class ConvNormAct(nn.Sequential):
    """Conv (no bias) -> norm -> ReLU, mmcv's ConvModule default."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, norm: str = "bn") -> None:
        super().__init__(
            nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False), make_norm(norm, cout), nn.ReLU(inplace=True)
        )

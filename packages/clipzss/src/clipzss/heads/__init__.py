"""Decode heads of the students: the output projection emits C channels (the CLIP text space) at 1/4 resolution.

Heads register themselves by name (timm-style decorator); :func:`create_head` builds one.
"""

from __future__ import annotations

from ._base import create_head, list_heads, register_head
from .segformer import SegFormerHead
from .upernet import UPerNetHead

__all__ = ["SegFormerHead", "UPerNetHead", "create_head", "list_heads", "register_head"]

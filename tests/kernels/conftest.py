"""Kernel-test fixtures: exact fp32 references on GPUs."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _no_tf32():
    """cuDNN convolutions default to TF32 for fp32 inputs; the fp32 ground truth must be exact fp32."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved

"""Fixtures of the SED tests (all CPU, random weights)."""

from __future__ import annotations

import pytest
import torch
from sed_testing import perturb_norms

import sed


@pytest.fixture(scope="module")
def tiny_model() -> sed.SED:
    torch.manual_seed(0)
    model = sed.create_sed("sed_tiny")
    perturb_norms(model.decoder)
    model.ensure_vocabulary()
    return model.eval()

"""Gradient flow (official SED ``sed/sed_model.py``): the encoder learns only through the cost map, auxiliary heads
only train themselves, the text tower is frozen."""

from __future__ import annotations

import pytest
import torch

import sed
from sed.losses import sed_bce_loss


@pytest.fixture()
def setup():
    torch.manual_seed(0)
    model = sed.create_sed("sed_tiny").train()
    model.ensure_vocabulary()
    images = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    labels = torch.randint(0, 8, (2, 64, 64))
    return model, model.preprocess(images), labels


def _grads(model: torch.nn.Module, prefix: str) -> dict[str, torch.Tensor | None]:
    return {n: p.grad for n, p in model.named_parameters() if n.startswith(prefix) and p.requires_grad}


def _nonzero(g: torch.Tensor | None) -> bool:
    return g is not None and bool(g.abs().sum() > 0)


def test_text_tower_is_frozen(setup) -> None:
    model, _, _ = setup
    for name, p in model.encoder.clip.named_parameters():
        assert p.requires_grad == ("visual" in name), name


def test_encoder_learns_only_through_the_cost_map(setup) -> None:
    model, x, labels = setup
    losses = model({"image": torch.zeros(2, 3, 64, 64), "label": labels})
    sum(losses.values()).backward()
    enc = _grads(model, "encoder.")
    assert any(n.startswith("encoder.clip.visual.trunk.stages.0.") for n in enc)  # the early stages are checked too
    # res2..res4 feed the decoder only as detached skips, yet every stage gets a gradient via res5 -> Fv -> cost.
    assert all(_nonzero(g) for g in enc.values())
    model.zero_grad(set_to_none=True)
    cost, skips = model.features(x)
    assert not any(s.requires_grad for s in skips)
    logits, aux = model.decoder(cost.detach(), skips)  # cut the cost map: nothing reaches the encoder
    (logits.sum() + sum(a.sum() for a in aux)).backward()
    assert all(g is None for g in _grads(model, "encoder.").values())
    assert _nonzero(model.decoder.decoder_guidance_projection[0][0].weight.grad)  # skip projections do learn


def test_aux_heads_do_not_train_the_decoder(setup) -> None:
    model, x, labels = setup
    logits, aux = model.forward_logits(x)
    sum(sed_bce_loss(a, labels) for a in aux).backward()
    heads = ("decoder.head0.", "decoder.head1.", "decoder.head2.")
    for name, g in _grads(model, "decoder.").items():
        if name.startswith(heads):
            assert _nonzero(g), name
        else:
            assert g is None, name
    assert all(g is None for g in _grads(model, "encoder.").values())


def test_final_loss_does_not_reach_the_aux_heads(setup) -> None:
    model, x, labels = setup
    logits, _ = model.forward_logits(x)
    sed_bce_loss(logits, labels).backward()
    grads = _grads(model, "decoder.")
    for name, g in grads.items():
        if name.startswith(("decoder.head0.", "decoder.head1.", "decoder.head2.")):
            assert g is None, name
        else:
            assert _nonzero(g), name

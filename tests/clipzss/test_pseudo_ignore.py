"""The fused-label ignore value never collides with a class id, and nothing about unseen classes reaches the losses.

Convention (package README, "Label ids and the ignore value"): the dataset's ignore value (``loss.ignore_index``,
255) is read only at the input; the compact labels, the fused map F, CE, the NEL one-hot targets and the label
centroids all use -1, so seen + pseudo ids may go past 255 (COCO-Stuff: 156 seen + 100 pseudo classes).
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from clipzss.losses import ce_loss, nel_loss, one_hot_targets
from clipzss.pseudo_labels import PseudoLabeler, PseudoLabels, fuse_labels
from clipzss.synthesizer import label_centroids
from conftest import demo_batch

NONE = -1  # the fused-label ignore value


def _many_pseudo_classes(num_seen: int, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One image: left half seen class 0, right half unannotated and split into ``k`` token columns of pseudo ids."""
    label = torch.full((1, 4, 2 * k), 255, dtype=torch.long)
    label[..., :k] = 0
    tokens = torch.full((1, 1, 2 * k), -1, dtype=torch.long)
    tokens[0, 0, k:] = torch.arange(k)
    return label, tokens, label == 255


def test_fused_ids_past_255_are_classes_not_ignore() -> None:
    num_seen, k = 250, 10
    label, tokens, free = _many_pseudo_classes(num_seen, k)
    label[0, 0, 0] = 255  # an annotated-looking ignore pixel that no token covers: stays ignore
    free[0, 0, 0] = False
    fused, num_pseudo = fuse_labels(label, tokens, free, num_seen)
    assert num_pseudo == k
    # column k + j holds pseudo class num_seen + j; 255 is pseudo class 5, a class like any other
    assert fused[0, :, k:].tolist() == [list(range(num_seen, num_seen + k))] * 4
    assert (fused == 255).sum() == 4
    assert int(fused[0, 0, 0]) == NONE  # the ignore value of F cannot be a class id
    assert fused.dtype == torch.int64


def test_losses_and_centroids_treat_255_as_a_class() -> None:
    torch.manual_seed(0)
    num_labels = 260
    target = torch.tensor([[[255, 255, 3, NONE]]])
    feats = torch.randn(1, 4, 1, 4)
    cents, present = label_centroids(feats, target, num_labels)
    assert present.nonzero()[:, 0].tolist() == [3, 255]
    torch.testing.assert_close(cents[255], feats[0, :, 0, :2].mean(1))
    logits = torch.randn(1, num_labels, 1, 4)
    # CE over the three labelled pixels, written out: -log softmax at the target
    logp = logits.log_softmax(1)[0, :, 0]
    expect = -(logp[255, 0] + logp[255, 1] + logp[3, 2]) / 3
    torch.testing.assert_close(ce_loss(logits, target), expect)
    oh = one_hot_targets(target, num_labels)
    assert oh[0, 255, 0].tolist() == [1.0, 1.0, 0.0, 0.0] and oh[0, :, 0, 3].sum() == 0
    assert torch.isfinite(nel_loss(logits, target))
    assert not torch.allclose(nel_loss(logits, target), nel_loss(logits, target.masked_fill(target == 255, NONE)))


def test_dropped_pseudo_ids_are_renumbered() -> None:
    from clipzss.pseudo_labels import drop_absent_pseudo_ids

    target = torch.tensor([[[0, 4, 6, NONE, 7]]])  # Ns = 3, pseudo ids 3..7, 3 and 5 have no pixel any more
    out, k = drop_absent_pseudo_ids(target, num_seen=3)
    assert out.tolist() == [[[0, 3, 4, NONE, 5]]] and k == 3
    out, k = drop_absent_pseudo_ids(torch.tensor([[[0, NONE]]]), num_seen=3)
    assert out.tolist() == [[[0, NONE]]] and k == 0


# ------------------------------------------------------------------------------------------------ the model


def _wide_vocabulary(num_seen: int) -> dict[str, Any]:
    """The demo vocabulary plus filler seen classes so that ``Ns`` = ``num_seen`` (dataset ids skip 255)."""
    from clipzss.presets import DEMO_SEEN
    from ovcore.data import DEMO_CLASSES

    extra = num_seen - len(DEMO_SEEN)
    filler = [i for i in range(len(DEMO_CLASSES), len(DEMO_CLASSES) + extra + 1) if i != 255][:extra]
    names = list(DEMO_CLASSES) + [f"filler {i}" for i in range(len(DEMO_CLASSES), max(filler) + 1)]
    return {"class_names": names, "seen_classes": list(DEMO_SEEN) + filler}


@pytest.mark.parametrize("resolution", ["label", "feature"])
def test_training_with_a_pseudo_class_numbered_255(make_tiny, monkeypatch, resolution: str) -> None:
    import clipzss.model

    model = make_tiny(loss__loss_resolution=resolution, **_wide_vocabulary(255)).train()
    assert model.num_seen == 255
    batch = demo_batch(2)
    pl = model.pseudo_labels(batch)
    assert pl.num_pseudo > 0 and (pl.fused == 255).any()  # the first pseudo class is 255
    seen_by = {}
    for name in ("ce_loss", "nel_loss"):
        fn = getattr(clipzss.model, name)

        def record(logits, target, *args, _fn=fn, _name=name, **kwargs):
            seen_by[_name] = (logits.detach(), target)
            return _fn(logits, target, *args, **kwargs)

        monkeypatch.setattr(clipzss.model, name, record)
    losses = model(batch)
    assert all(torch.isfinite(v) for v in losses.values())
    logits, target = seen_by["ce_loss"]
    k = logits.shape[1] - 255  # pseudo channels (at feature resolution a small pseudo class may drop out)
    assert k == pl.num_pseudo if resolution == "label" else 0 < k <= pl.num_pseudo
    assert (target == 255).any()
    # CE written out: mean of -log softmax at the target over every labelled pixel, class 255 included
    logp = logits.log_softmax(1).permute(0, 2, 3, 1)[target >= 0]
    expect = -logp.gather(1, target[target >= 0][:, None]).mean()
    torch.testing.assert_close(losses["loss_ce"], expect)
    # NEL: class 255 has a one-hot target channel (ignore -1 is the only ignored value)
    logits, target = seen_by["nel_loss"]
    torch.testing.assert_close(losses["loss_nel"], nel_loss(logits, target, ignore_index=NONE))
    assert not torch.allclose(losses["loss_nel"], nel_loss(logits, target.masked_fill(target == 255, NONE)))
    sum(losses.values()).backward()


def _stub_labeler(fused: torch.Tensor, k: int):
    """A PseudoLabeler stand-in returning a fixed fused map (the model only reads ``fused`` and ``num_pseudo``)."""
    b, h, w = fused.shape

    def call(*args: Any, **kwargs: Any) -> PseudoLabels:
        zeros = torch.zeros(b, dtype=torch.long)
        grid = torch.full((b, 1, 1), -1)
        return PseudoLabels(fused.clone(), k, grid, grid >= 0, zeros, zeros)

    return call


def test_a_pseudo_class_lost_at_feature_resolution_contributes_nothing(make_tiny) -> None:
    """Nearest down-sampling of F to the feature grid can miss a small pseudo class: it simply drops out."""
    batch = demo_batch(2)
    ns = 6
    fused = torch.full((2, 64, 64), NONE, dtype=torch.long)
    fused[:, :32] = 0
    fused[:, 32:] = ns  # pseudo class 0 on the bottom half
    fused[1, 32:, 32:] = ns + 2  # pseudo class 2
    # Pseudo class 1 on one pixel that the 16x16 feature grid never samples (nearest reads rows/cols 0, 4, 8, ...).
    fused[0, 33, 33] = ns + 1
    without = fused.clone()
    without[0, 33, 33] = ns
    without[without == ns + 2] = ns + 1

    def losses(f: torch.Tensor, k: int) -> dict[str, torch.Tensor]:
        model = make_tiny(loss__loss_resolution="feature").train()
        model.pseudo_labeler = _stub_labeler(f, k)
        torch.manual_seed(0)
        return model(batch)

    got, ref = losses(fused, 3), losses(without, 2)
    assert all(torch.equal(got[n], ref[n]) for n in ref), {n: (got[n], ref[n]) for n in ref}


# ------------------------------------------------------------------------------------------------ inductive protocol


def _variants() -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """Training batches and vocabularies that differ only in what the unseen classes (6, 7) are."""
    from ovcore.data import DEMO_CLASSES

    base = demo_batch(2, seed=3)
    full = base["full_label"].clone()
    # Trailing black rows whose pixels are unseen: padding only once the unseen class is ignore.
    base["image"][..., 32:, :] = 0
    full[:, 32:, :] = 6
    train = full.masked_fill((full == 6) | (full == 7), 255)
    swapped = torch.where(full == 6, 7, torch.where(full == 7, 6, full))
    renamed = list(DEMO_CLASSES[:6]) + ["purple hexagon", "polka dots"]

    def batch(label: torch.Tensor) -> dict[str, Any]:
        return {"image": base["image"].clone(), "label": label}

    return {
        "remapped upstream (255)": (batch(train), {}),
        "unseen dataset ids kept": (batch(full), {}),
        "unseen ids swapped": (batch(swapped), {}),
        "unseen ids at another ignore-like value": (batch(full.masked_fill(full >= 6, 254)), {}),
        "unseen names and text changed": (batch(train), {"class_names": renamed}),
    }


@pytest.mark.parametrize("resolution", ["label", "feature"])
def test_unseen_classes_never_reach_the_training_losses(make_tiny, resolution: str) -> None:
    """Inductive setting (paper §3.1): unseen annotations are 'ignored' and their names unknown in training."""
    results = {}
    for name, (batch, vocab) in _variants().items():
        model = make_tiny(loss__loss_resolution=resolution, **vocab).train()
        steps = []
        for step in range(2):  # the second step also reads the GLM bank of the first
            torch.manual_seed(step)
            steps.append(model(batch))
        results[name] = steps
    ref_name = "remapped upstream (255)"
    ref = results.pop(ref_name)
    for name, steps in results.items():
        for a, b in zip(steps, ref, strict=True):
            assert all(torch.equal(a[k], b[k]) for k in b), f"{name}: {a} != {ref_name}: {b}"


def test_pad_mask_is_inferred_on_the_compact_labels(make_tiny) -> None:
    model = make_tiny()
    (train_batch, _), (full_batch, _) = list(_variants().values())[:2]
    a, b = model.pseudo_labels(train_batch), model.pseudo_labels(full_batch)
    assert (a.fused[:, 32:] == NONE).all()  # black + unseen rows are padding: never pseudo-labelled
    assert torch.equal(a.fused, b.fused)


def test_labeler_accepts_the_dataset_ignore_value_too() -> None:
    """Any label outside the seen ids is unannotated: 255 and -1 give the same fused map."""
    from clipzss.config import PLMConfig

    g = torch.Generator().manual_seed(0)
    dense = torch.randn(1, 8, 4, 4, generator=g)
    label = torch.zeros(1, 16, 16, dtype=torch.long)
    label[:, 8:] = 255
    labeler = PseudoLabeler(PLMConfig(windows=(1,)))
    a = labeler(dense, label, num_seen=2)
    b = labeler(dense, label.masked_fill(label == 255, NONE), num_seen=2)
    assert a.num_pseudo > 0 and torch.equal(a.fused, b.fused)
    assert (a.fused[:, :8] == 0).all() and (a.fused[:, 8:] >= 2).all()

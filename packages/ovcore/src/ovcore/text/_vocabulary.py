"""Per-class, per-template CLIP text embeddings (SED paper Sec. 3.1, official SED
``sed/modeling/transformer/sed_predictor.py``).

For class ``t`` with synonyms ``s_1..s_S`` (SED's rule: the name split on ``", "``) and template ``p``:
``E[t, p] = normalize(mean_s normalize(encode_text(template_p.format(s))))``. The template axis is kept.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ._fast import encode_text

__all__ = ["split_synonyms", "check_vocabulary", "build_prompts", "encode_vocabulary"]

logger = logging.getLogger(__name__)

# From this many encode_text batches on (several seconds on a CPU), encoding reports progress unless asked not to:
# a tqdm bar on a terminal, otherwise INFO log lines (redirected output, job logs), about ten per vocabulary.
_PROGRESS_MIN_BATCHES = 8
_LOG_LINES = 10


def split_synonyms(class_name: str) -> list[str]:
    """Split a class name into its synonyms with SED's rule (``"person, people"`` -> ``["person", "people"]``).

    Only ``", "`` separates synonyms; a comma without a following space is part of the name.

    Raises:
        ValueError: empty name.
    """
    if not isinstance(class_name, str) or not class_name.strip():
        raise ValueError(f"class names must be non-empty strings, got {class_name!r}")
    return class_name.split(", ")


def _normalise(name: str) -> str:
    return " ".join(name.split()).lower()


def _is_filled(name: object) -> bool:
    return isinstance(name, str) and all(_normalise(synonym) for synonym in name.split(", "))


def check_vocabulary(class_names: Sequence[str]) -> list[str]:
    """The class names as a list, after checking that they make a usable vocabulary.

    Every class must be able to win: a second copy of a name gets the same embedding as the first and loses every
    tie (argmax keeps the first), so it is never predicted. Names are compared with case and runs of whitespace
    ignored, as CLIP's tokenizer lowercases and collapses whitespace; synonyms belong in one entry
    (``"grass, lawn"``), not in two.

    Args:
        class_names: T names; ``", "`` separates synonyms.

    Returns:
        ``list(class_names)``.

    Raises:
        ValueError: a single string instead of a list, an empty vocabulary, a name that is not a string or is empty
            (or has an empty synonym, as in ``"cat, "``), or duplicate names (all of them are named).
    """
    if isinstance(class_names, str):
        raise ValueError(f"class names must be sequences of strings (a list), not the single string {class_names!r}")
    names = list(class_names)
    if not names:
        raise ValueError("the vocabulary is empty: pass at least one class name")
    bad = [f"#{i} {n!r}" for i, n in enumerate(names) if not _is_filled(n)]
    if bad:
        raise ValueError(
            f"class names must be non-empty strings (synonyms around ', ' too); rejected: {', '.join(bad[:10])}"
            + (f" and {len(bad) - 10} more" if len(bad) > 10 else "")
        )
    duplicates = _duplicate_groups(names)
    if duplicates:
        shown = "; ".join(" = ".join(f"#{i} {names[i]!r}" for i in group) for group in duplicates[:10])
        raise ValueError(
            f"duplicate class names in the vocabulary (case and whitespace ignored): {shown}"
            + (f" and {len(duplicates) - 10} more" if len(duplicates) > 10 else "")
            + "; a repeated class can never be predicted: keep one entry (put synonyms in it, separated by ', ')"
        )
    return names


def _duplicate_groups(names: list[str]) -> list[list[int]]:
    """Indices of the names that normalise alike, one group per repeated name, in order of first appearance."""
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        groups.setdefault(_normalise(name), []).append(i)
    return [group for group in groups.values() if len(group) > 1]


def _check_inputs(class_names: Sequence[str], templates: Sequence[str]) -> tuple[list[str], list[str]]:
    if isinstance(templates, str):
        raise ValueError(f"templates must be sequences of strings (a list), not the single string {templates!r}")
    names, temps = check_vocabulary(class_names), list(templates)
    if not temps:
        raise ValueError("the template list is empty: pass at least one template (see ovcore.text.get_templates)")
    for template in temps:
        if not isinstance(template, str) or template.count("{}") != 1:
            raise ValueError(f"each template needs exactly one '{{}}' placeholder, got {template!r}")
    return names, temps


def build_prompts(class_names: Sequence[str], templates: Sequence[str]) -> tuple[list[str], list[int]]:
    """All prompts of a vocabulary and the flat ``t * P + p`` row each belongs to.

    Order: class-major, then template-major with synonyms inner (SED's order within a class).
    """
    names, temps = _check_inputs(class_names, templates)
    prompts: list[str] = []
    rows: list[int] = []
    for t, name in enumerate(names):
        synonyms = split_synonyms(name)
        for p, template in enumerate(temps):
            for synonym in synonyms:
                prompts.append(template.format(synonym))
                rows.append(t * len(temps) + p)
    return prompts, rows


def _model_device(clip_model: Any) -> torch.device:
    try:
        return next(clip_model.parameters()).device
    except (AttributeError, StopIteration):
        return torch.device("cpu")


@torch.no_grad()
def encode_vocabulary(
    clip_model: Any,
    tokenizer: Callable[[list[str]], torch.Tensor],
    class_names: Sequence[str],
    templates: Sequence[str],
    *,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    progress: bool | None = None,
) -> torch.Tensor:
    """Encode every (class, template) pair of a vocabulary with the CLIP text tower.

    Args:
        clip_model: anything with ``encode_text(tokens) -> (N, D)`` (an open_clip CLIP).
        tokenizer: ``tokenizer(list_of_prompts) -> LongTensor (N, L)`` (``ovcore.clip.get_tokenizer``).
        class_names: T names; ``", "`` separates synonyms, whose embeddings are averaged per template.
        templates: P templates with one ``{}`` each.
        batch_size: prompts per ``encode_text`` call.
        device: where to run and return; default the model's device.
        progress: True: a tqdm bar; False: silent; None (default): silent below 8 batches, else a tqdm bar on a
            terminal and INFO log lines (logger ``ovcore.text._vocabulary``) when stderr is not one.

    Returns:
        float32 tensor (T, P, D), unit L2 norm along D.

    Raises:
        ValueError: a vocabulary :func:`check_vocabulary` rejects (empty, an empty name, duplicate names), an
            empty template list, a template without exactly one ``{}`` or a non-positive batch size.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    names, temps = _check_inputs(class_names, templates)
    prompts, rows = build_prompts(names, temps)
    num_rows = len(names) * len(temps)
    device = torch.device(device) if device is not None else _model_device(clip_model)
    starts = range(0, len(prompts), batch_size)
    mode = _progress_mode(progress, len(starts))
    report = _ProgressLog(len(names), len(temps), len(starts), device) if mode == "log" else None

    row_index = torch.tensor(rows, dtype=torch.long, device=device)
    counts = torch.bincount(row_index, minlength=num_rows).clamp_min(1).to(torch.float32)
    total: torch.Tensor | None = None
    # eval mode while encoding; each submodule's own mode is restored afterwards (e.g. a training image tower)
    modes = [(m, m.training) for m in clip_model.modules()] if hasattr(clip_model, "modules") else []
    for module, _ in modes:
        module.training = False
    try:
        for i, start in enumerate(tqdm(starts, desc="encoding vocabulary", unit="batch", disable=mode != "bar")):
            tokens = tokenizer(prompts[start : start + batch_size]).to(device)
            # open_clip CLIPs run on the used context only (exact: causal mask, end-of-text pooling; ._fast)
            emb = F.normalize(encode_text(clip_model, tokens).float(), dim=-1)
            if total is None:
                total = torch.zeros(num_rows, emb.shape[-1], dtype=torch.float32, device=device)
            # sum of the normalised synonym embeddings of each (class, template) row; divided by S below
            total.index_add_(0, row_index[start : start + batch_size], emb)
            if report is not None:
                report.step(i + 1, rows[min(start + batch_size, len(rows)) - 1] // len(temps) + 1)
    finally:
        for module, training in modes:
            module.training = training
    assert total is not None  # at least one prompt exists after the checks above
    mean = total / counts[:, None]
    return F.normalize(mean, dim=-1).view(len(names), len(temps), -1)


def _progress_mode(progress: bool | None, num_batches: int) -> str:
    """``"bar"``, ``"log"`` or ``"off"`` for an encoding of ``num_batches`` batches."""
    if progress is not None:
        return "bar" if progress else "off"
    if num_batches < _PROGRESS_MIN_BATCHES:
        return "off"
    return "bar" if sys.stderr.isatty() else "log"


class _ProgressLog:
    """About ``_LOG_LINES`` INFO lines over an encoding, for output that is not a terminal."""

    def __init__(self, num_classes: int, num_templates: int, num_batches: int, device: torch.device) -> None:
        self.num_classes, self.num_batches = num_classes, num_batches
        self.every = -(-num_batches // _LOG_LINES)
        self.t0 = time.monotonic()
        logger.info(
            "encoding %d classes x %d templates (%d batches) on %s", num_classes, num_templates, num_batches, device
        )

    def step(self, batches_done: int, classes_done: int) -> None:
        if batches_done % self.every and batches_done != self.num_batches:
            return
        logger.info(
            "encoded %d/%d classes (%d/%d batches, %.0f s)",
            classes_done,
            self.num_classes,
            batches_done,
            self.num_batches,
            time.monotonic() - self.t0,
        )

"""Per-class, per-template CLIP text embeddings (SED spec §2).

For class ``t`` with synonyms ``s_1..s_S`` (SED's rule: the name split on ``", "``) and template ``p``:
``E[t, p] = normalize(mean_s normalize(encode_text(template_p.format(s))))``. The template axis is kept.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

__all__ = ["split_synonyms", "build_prompts", "encode_vocabulary"]

# With this many classes or more (and a terminal), a progress bar is shown unless asked otherwise.
_PROGRESS_MIN_CLASSES = 100


def split_synonyms(class_name: str) -> list[str]:
    """Split a class name into its synonyms with SED's rule (``"person, people"`` -> ``["person", "people"]``).

    Only ``", "`` separates synonyms; a comma without a following space is part of the name.

    Raises:
        ValueError: empty name.
    """
    if not isinstance(class_name, str) or not class_name.strip():
        raise ValueError(f"class names must be non-empty strings, got {class_name!r}")
    return class_name.split(", ")


def _check_inputs(class_names: Sequence[str], templates: Sequence[str]) -> tuple[list[str], list[str]]:
    if isinstance(class_names, str) or isinstance(templates, str):
        raise ValueError("class_names and templates must be sequences of strings, not a single string")
    names, temps = list(class_names), list(templates)
    if not names:
        raise ValueError("the vocabulary is empty: pass at least one class name")
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
        progress: show a tqdm bar; default only for large vocabularies on a terminal.

    Returns:
        float32 tensor (T, P, D), unit L2 norm along D.

    Raises:
        ValueError: empty vocabulary or template list, a template without exactly one ``{}``, an empty name or a
            non-positive batch size.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    names, temps = _check_inputs(class_names, templates)
    prompts, rows = build_prompts(names, temps)
    num_rows = len(names) * len(temps)
    device = torch.device(device) if device is not None else _model_device(clip_model)
    if progress is None:
        progress = len(names) >= _PROGRESS_MIN_CLASSES and sys.stderr.isatty()

    row_index = torch.tensor(rows, dtype=torch.long, device=device)
    counts = torch.bincount(row_index, minlength=num_rows).clamp_min(1).to(torch.float32)
    total: torch.Tensor | None = None
    # eval mode while encoding; each submodule's own mode is restored afterwards (e.g. a training image tower)
    modes = [(m, m.training) for m in clip_model.modules()] if hasattr(clip_model, "modules") else []
    for module, _ in modes:
        module.training = False
    try:
        starts = range(0, len(prompts), batch_size)
        for start in tqdm(starts, desc="encoding vocabulary", unit="batch", disable=not progress):
            tokens = tokenizer(prompts[start : start + batch_size]).to(device)
            emb = F.normalize(clip_model.encode_text(tokens).float(), dim=-1)
            if total is None:
                total = torch.zeros(num_rows, emb.shape[-1], dtype=torch.float32, device=device)
            # sum of the normalised synonym embeddings of each (class, template) row; divided by S below
            total.index_add_(0, row_index[start : start + batch_size], emb)
    finally:
        for module, training in modes:
            module.training = training
    assert total is not None  # at least one prompt exists after the checks above
    mean = total / counts[:, None]
    return F.normalize(mean, dim=-1).view(len(names), len(temps), -1)

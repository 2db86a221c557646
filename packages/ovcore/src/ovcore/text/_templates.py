"""Prompt-template sets, stored as package data (``templates/<name>.txt``, one template per line, ``#`` comments)."""

from __future__ import annotations

from functools import cache
from importlib import resources

__all__ = ["TEMPLATE_SETS", "get_templates", "list_template_sets"]

# name -> where it comes from; the order of "imagenet" is SED's cost-map channel order
TEMPLATE_SETS: dict[str, str] = {
    "imagenet": "SED IMAGENET_TEMPLATES: the 80 OpenAI CLIP ImageNet templates (P = 80, used by SED)",
    "imagenet_select": "SED IMAGENET_TEMPLATES_SELECT (8 templates)",
    "single": "SED's single template 'A photo of a {} in the scene'",
    "zegclip": "ZegCLIP's 15-template ensemble (COCO-Stuff, PASCAL Context; CLIP-ZSS default)",
    "zegclip_single": "ZegCLIP's single template 'a photo of a {}' (PASCAL VOC; CLIP-ZSS default)",
}


@cache
def _read(name: str) -> tuple[str, ...]:
    text = resources.files(__package__).joinpath("templates", f"{name}.txt").read_text(encoding="utf-8")
    return tuple(line for line in text.splitlines() if line.strip() and not line.startswith("#"))


def list_template_sets() -> list[str]:
    """Names accepted by :func:`get_templates`."""
    return list(TEMPLATE_SETS)


def get_templates(name: str) -> list[str]:
    """The prompt templates of a named set, each with one ``{}`` for the class name.

    Args:
        name: one of :func:`list_template_sets` (``"imagenet"``, ``"imagenet_select"``, ``"single"``, ``"zegclip"``,
            ``"zegclip_single"``).

    Raises:
        ValueError: unknown set name.
    """
    if name not in TEMPLATE_SETS:
        raise ValueError(f"unknown template set {name!r}; choose from {list_template_sets()}")
    return list(_read(name))

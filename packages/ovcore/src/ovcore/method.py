"""The method contract: what every segmentation method in this repository provides, and how it is found.

A *method* (SED, CLIP-ZSS, the MaskCLIP baseline, ...) is a package that registers one :class:`MethodSpec` under
the ``ovcore.methods`` entry-point group of its ``pyproject.toml``::

    [project.entry-points."ovcore.methods"]
    sed = "sed.method:METHOD"

Everything method-agnostic (the command-line kit, the web demo, the contract test suite) goes through this module:
:func:`list_methods`, :func:`list_presets`, :func:`create_model` and the :class:`SegmentationModel` interface, whose
``predict`` returns one :class:`Prediction` type for every method. Entry points are read lazily, so importing this
module imports no method and no torch.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch

__all__ = [
    "ENTRY_POINT_GROUP",
    "MethodSpec",
    "Prediction",
    "SegmentationModel",
    "create_model",
    "find_method",
    "get_method",
    "list_methods",
    "list_presets",
    "predict_each",
    "register_method",
]

ENTRY_POINT_GROUP = "ovcore.methods"
"""Entry-point group under which method packages publish their :class:`MethodSpec`."""


@dataclass
class Prediction:
    """What ``predict`` returns, for every method.

    Attributes:
        probs: ``(B, T, H, W)`` float class scores at the input resolution (probabilities for SED's sigmoid and for
            softmax methods; 0 for classes a method rejected early).
        labels: ``(B, H, W)`` int64 arg-max class ids into ``class_names``.
        class_names: The vocabulary the ids refer to.
        stats: One dict per image with method-specific figures (e.g. SED's classes kept per CER stage as ``kept``).
    """

    probs: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]
    stats: list[dict[str, Any]] = field(default_factory=list)

    def __getitem__(self, key: str) -> Any:
        # ``out["probs"]`` keeps working for code written against the earlier dict results.
        if key in ("probs", "labels", "class_names", "stats"):
            return getattr(self, key)
        raise KeyError(key)

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@runtime_checkable
class SegmentationModel(Protocol):
    """The model interface every method implements (a ``torch.nn.Module``).

    * ``forward(batch)`` takes a training batch (``{"image": uint8 (B,3,H,W), "label": int64 (B,H,W), ...}``) and
      returns a dict of named scalar losses; the training engine optimises their (weighted) sum and logs it as
      ``"loss"`` (training-free methods raise ``RuntimeError``);
    * ``predict(images, class_names=...)`` runs the method's test pipeline on any image input
      (``ovcore.data.images``: PIL images, paths, arrays, uint8 or 0..255 float tensors, lists) and returns a
      :class:`Prediction`;
    * ``set_vocabulary(names, templates=...)`` switches the vocabulary (text embeddings are cached);
    * ``class_names`` is the current vocabulary;
    * optionally ``default_optim(optim_cfg) -> OptimConfig``: the method's parameter groups as rules (learning-rate
      multipliers and no-decay names by parameter-name pattern) that ``ovcore.train.build_optimizer`` applies.
    """

    class_names: list[str]

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]: ...

    def predict(self, images: Any, class_names: Sequence[str] | None = None, **options: Any) -> Prediction: ...

    def set_vocabulary(self, class_names: Sequence[str], templates: str | Sequence[str] | None = None) -> Any: ...


@dataclass(frozen=True)
class MethodSpec:
    """One method's entry into the shared tooling.

    Attributes:
        name: Short name (``"sed"``), also the prefix of its preset names and console scripts.
        title: One line for listings (``"SED (Xie et al., CVPR 2024)"``).
        list_presets: ``pattern -> sorted preset names``.
        create: ``(preset, checkpoint=None, **overrides) -> SegmentationModel``: builds a preset, optionally with
            the weights of a checkpoint file.
        trainable: Whether ``forward`` trains (False for training-free baselines).
        small_preset: The preset the contract tests build (tiny, random weights, CPU).
        save: ``(model, path) -> None``: writes the weights a later ``create(preset, checkpoint=path)`` reads back
            (None: ``torch.save(model.state_dict(), path)``).
        extras: Anything else a method wants to publish (kept out of the core contract).
    """

    name: str
    title: str
    list_presets: Callable[[str], list[str]]
    create: Callable[..., Any]
    trainable: bool = True
    small_preset: str | None = None
    save: Callable[[Any, Any], None] | None = None
    extras: Mapping[str, Any] = field(default_factory=dict)

    def save_model(self, model: Any, path: Any) -> None:
        """Write ``model``'s weights to ``path`` in the form ``create(preset, checkpoint=path)`` reads."""
        if self.save is not None:
            self.save(model, path)
            return
        import torch

        torch.save(model.state_dict(), path)


_REGISTERED: dict[str, MethodSpec] = {}
_DISCOVERED = False


def register_method(spec: MethodSpec) -> MethodSpec:
    """Register a method by hand (plugins outside the workspace may also use the entry-point group).

    Raises:
        ValueError: another method already uses the name.
    """
    existing = _REGISTERED.get(spec.name)
    if existing is not None and existing is not spec:
        raise ValueError(f"method {spec.name!r} is already registered")
    _REGISTERED[spec.name] = spec
    return spec


def _discover() -> None:
    global _DISCOVERED
    if _DISCOVERED:
        return
    _DISCOVERED = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in _REGISTERED:
            continue
        spec = ep.load()
        if not isinstance(spec, MethodSpec):
            raise RuntimeError(f"entry point {ep.value!r} of group {ENTRY_POINT_GROUP!r} is not an ovcore MethodSpec")
        _REGISTERED[ep.name] = spec


def list_methods() -> list[str]:
    """Names of the installed methods, sorted."""
    _discover()
    return sorted(_REGISTERED)


def get_method(name: str) -> MethodSpec:
    """The method registered as ``name``.

    Raises:
        ValueError: unknown method (the message lists the installed ones).
    """
    _discover()
    if name not in _REGISTERED:
        raise ValueError(f"unknown method {name!r}; installed methods: {list_methods()}")
    return _REGISTERED[name]


def list_presets(pattern: str = "*") -> list[str]:
    """Preset names of every installed method that match an fnmatch ``pattern``, sorted."""
    names: list[str] = []
    for method in list_methods():
        names.extend(get_method(method).list_presets(pattern))
    return sorted(names)


def find_method(preset: str) -> MethodSpec:
    """The method that registers ``preset``.

    Raises:
        ValueError: no installed method has that preset (the message lists close names).
    """
    for method in list_methods():
        spec = get_method(method)
        if preset in spec.list_presets("*"):
            return spec
    close = [n for n in list_presets("*") if fnmatch.fnmatchcase(n, f"*{preset.split('_')[0]}*")][:12]
    hint = f" (similar: {close})" if close else f"; available presets: {list_presets('*')}"
    raise ValueError(f"unknown preset {preset!r}{hint}")


def create_model(preset: str, checkpoint: Any = None, **overrides: Any) -> Any:
    """Build any method's preset by name: ``ovcore.method.create_model("sed_tiny")``.

    ``preset`` may also be pretrained weights in the Hub layout (``ovcore.hub``): ``"hf-hub:org/repo[@revision]"``
    or a folder written by ``save_pretrained``; config.json then names the method and the preset.

    Args:
        preset: A preset name from :func:`list_presets`, an ``hf-hub:`` source or a pretrained folder.
        checkpoint: Optional weights (a file, a state dict, or an ``hf-hub:`` source / pretrained folder).
        **overrides: Passed to the method's ``create`` (config fields, ``device=...``).

    Raises:
        ValueError: unknown preset, or a bad pretrained source (see ``ovcore.hub.load_pretrained``).
        RuntimeError: an ``hf-hub:`` source that is offline and not in the cache.
    """
    from ovcore.hub import HUB_PREFIX, create_from_pretrained, is_pretrained_source

    # A registered preset wins over a same-named folder in the working directory.
    if preset.startswith(HUB_PREFIX) or (is_pretrained_source(preset) and preset not in list_presets("*")):
        if checkpoint is not None:
            raise ValueError(f"{preset!r} already holds the weights; do not pass checkpoint= as well")
        return create_from_pretrained(preset, **overrides)
    return find_method(preset).create(preset, checkpoint=checkpoint, **overrides)


def predict_each(model: Any, images: Any, class_names: Sequence[str] | None = None, **options: Any) -> list[Prediction]:
    """``model.predict`` one image at a time: the route for images of different sizes (one batch needs one size).

    Args:
        model: A :class:`SegmentationModel`.
        images: Anything ``ovcore.data.images.as_image_list`` accepts (PIL images, paths, arrays, tensors, lists).
        class_names: Switch to this vocabulary first (once, not per image).
        **options: The method's predict options.

    Returns:
        One :class:`Prediction` (batch of one) per image, in order.
    """
    from ovcore.data.images import as_image_list

    frames = as_image_list(images)
    if class_names is not None:
        model.set_vocabulary(class_names, options.pop("templates", None))
    return [model.predict(frame[None], **options) for frame in frames]

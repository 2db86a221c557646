"""How the generic commands get and call a method's model: :class:`LoadedModel`, the default loader, predictions.

The generic ``predict`` and ``eval`` commands (:mod:`ovcore.cmd.predict`, :mod:`ovcore.cmd.evaluate`) work for any
``ovcore.method.MethodSpec``: by default the model comes from ``ovcore.method.create_model(preset, checkpoint)``. A
method whose weights need more (SED's official checkpoints, CLIP-ZSS's inference checkpoints) passes its own
``load`` function returning a :class:`LoadedModel`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ovcore.cmd.errors import UsageError, require_file

__all__ = ["LoadedModel", "Loader", "as_prediction", "load_with_method", "method_name"]


@dataclass
class LoadedModel:
    """A built model and what the generic commands need to know about it.

    Attributes:
        model: The model (``ovcore.method.SegmentationModel``), in eval mode on its device.
        weights: One line saying which weights were loaded (printed and written into the results).
        predict_options: Keyword arguments of every ``predict`` call (SED's ``k``, CLIP-ZSS's ``mode``).
        info: Fields added to ``predictions.json`` and to every evaluation result (e.g. ``cer_topk``).
        set_vocabulary: Replaces ``model.set_vocabulary(names)`` (CLIP-ZSS encodes names its checkpoint lacks).
        eval_transform: Dataset transform of the evaluation (SED's test resize), or None.
        before_benchmark: Called before each benchmark is scored; returns fields added to its results.
        result_suffix: Appended to the result file names (``a150_cer8.json``).
    """

    model: Any
    weights: str
    predict_options: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    set_vocabulary: Callable[[list[str]], Any] | None = None
    eval_transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    before_benchmark: Callable[[Any], dict[str, Any]] | None = None
    result_suffix: str = ""

    def use_vocabulary(self, names: Sequence[str]) -> None:
        """Make ``names`` the model's vocabulary."""
        if self.set_vocabulary is not None:
            self.set_vocabulary(list(names))
        else:
            self.model.set_vocabulary(list(names))


Loader = Callable[[Any, Any], LoadedModel]
"""``(options, device) -> LoadedModel``: how a command builds its model."""


def method_name(method: Any) -> str:
    """The name of a ``MethodSpec`` or of a method given by name."""
    return method if isinstance(method, str) else method.name


def load_with_method(method: Any, options: Any, device: Any) -> LoadedModel:
    """The default loader: ``MethodSpec.create(preset, checkpoint=...)`` (preset: the method's small one if unset).

    Raises:
        UsageError: an unknown preset, or a checkpoint that does not exist.
    """
    from ovcore.method import get_method

    spec = get_method(method) if isinstance(method, str) else method
    checkpoint = require_file(options.checkpoint, "--checkpoint")
    preset = options.preset or spec.small_preset
    if preset is None:
        raise UsageError(f"--preset: give a {spec.name} preset ({', '.join(spec.list_presets('*'))})")
    if preset not in spec.list_presets("*"):
        raise UsageError(
            f"--preset: unknown {spec.name} preset {preset!r}; available: {', '.join(spec.list_presets('*'))}"
        )
    model = spec.create(preset, checkpoint=str(checkpoint) if checkpoint is not None else None)
    what = f"preset {preset}" + (f", weights {checkpoint}" if checkpoint is not None else "")
    return LoadedModel(model.to(device).eval(), what)


def as_prediction(out: Any, class_names: Sequence[str]) -> Any:
    """``predict``'s output as an ``ovcore.method.Prediction``.

    Methods return a Prediction; for one release a ``{"probs", "labels", "stats"}`` dict (stats as lists per image
    or one dict of per-image lists) or a bare ``(B, T, H, W)`` score tensor is converted too.
    """
    from ovcore.method import Prediction

    if isinstance(out, Prediction):
        return out
    if isinstance(out, Mapping):
        probs = out["probs"]
        labels = out.get("labels")
        stats = _per_image_stats(out.get("stats"), len(probs))
    else:
        probs, labels, stats = out, None, [{} for _ in range(len(out))]
    labels = probs.argmax(1) if labels is None else labels
    return Prediction(probs, labels, list(class_names), stats)


def _per_image_stats(stats: Any, n: int) -> list[dict[str, Any]]:
    if isinstance(stats, list):
        return [dict(s) for s in stats]
    if not isinstance(stats, Mapping):
        return [{} for _ in range(n)]
    per_image = {k: v for k, v in stats.items() if isinstance(v, list) and len(v) == n}
    return [{k: v[i] for k, v in per_image.items()} for i in range(n)]

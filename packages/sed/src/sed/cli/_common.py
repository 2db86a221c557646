"""SED's own pieces of its command lines: its weight sources, inference options and training-time evaluation.

Everything shared by all methods (errors, logging, ``--vocabulary``, image folders, benchmarks, tables, the generic
``predict`` / ``eval`` commands) lives in ``ovcore.cmd``. This module imports no torch at load time, so the
commands' ``--help`` stays fast.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ovcore.cmd.errors import UsageError, check_min, require_file
from ovcore.cmd.options import ModelOptions

__all__ = [
    "SEDModelOptions",
    "build_split",
    "eval_target",
    "eval_transform",
    "evaluate_model",
    "load_model",
    "load_sed",
    "loaded_sed",
    "model_from_options",
    "read_weights",
    "set_inference_options",
]


# ------------------------------------------------------------------------------------------------- datasets
def build_split(name: str, root: str | Path | None, split: str, transform: Callable[[dict], dict] | None = None,
                *, memory_fallback: bool = True) -> Any:
    """A registered dataset's split (``ovcore.cmd.evaluate.build_benchmark_split``): ``demo`` without prepared files
    is generated in memory when ``memory_fallback`` (the commands allow it only without ``--data-root``)."""
    from ovcore.cmd.evaluate import build_benchmark_split

    return build_benchmark_split(eval_target(name, "--dataset"), root, split, transform,
                                 memory_fallback=memory_fallback)


def eval_target(name: str, option: str) -> Any:
    """The ``ovcore.benchmarks.Benchmark`` called ``name``, or an ad-hoc one for any registered dataset.

    Raises:
        ValueError: neither a benchmark nor a dataset name (the message names ``option``).
    """
    from ovcore.cmd.evaluate import benchmark_or_dataset

    return benchmark_or_dataset(name, option)


# ------------------------------------------------------------------------------------------------- weights
def read_weights(path: Path, option: str) -> Any:
    """``sed.convert.read_checkpoint`` with a damaged file reported as a ValueError naming ``option`` and the file."""
    from ovcore.train.checkpoint import UNREADABLE_ERRORS, unreadable_file_error
    from sed.convert import read_checkpoint

    try:
        return read_checkpoint(path)
    except UNREADABLE_ERRORS as err:
        raise ValueError(f"{option} {unreadable_file_error(path, err)}; give a complete checkpoint file") from err


def _safetensors_preset(path: Path) -> str | None:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return (f.metadata() or {}).get("preset") or None


def _checkpoint_preset(state: Any, source: Path) -> str | None:
    """The preset a checkpoint says it belongs to (engine config, sed-convert entry, metadata, or CLIP stem)."""
    from ovcore.train.checkpoint import CHECKPOINT_FORMAT
    from sed.convert import VARIANTS, infer_variant

    preset = None
    if isinstance(state, dict) and state.get("format") == CHECKPOINT_FORMAT:
        preset = (state.get("config") or {}).get("model")
    elif isinstance(state, dict) and isinstance(state.get("preset"), str):
        preset = state["preset"]
    elif source.suffix == ".safetensors":
        preset = _safetensors_preset(source)
    if preset is None and isinstance(state, dict):
        with contextlib.suppress(ValueError):
            preset = VARIANTS[infer_variant(state)]
    return preset


def _official(path: str, preset: str | None) -> tuple[Any, str, Path]:
    from sed.convert import VARIANTS, convert_official_checkpoint, infer_variant

    source = require_file(path, "--official-checkpoint")
    assert source is not None
    raw = read_weights(source, "--official-checkpoint")
    try:
        variant = infer_variant(raw) if preset is None else preset
        state = convert_official_checkpoint(raw, variant)
    except ValueError as err:
        raise ValueError(f"--official-checkpoint {str(source)!r}: {err}") from None
    preset = preset or VARIANTS[variant]
    return state, preset, source


def load_model(*, preset: str | None, checkpoint: str | None = None, official_checkpoint: str | None = None,
               pretrained_clip: str | None = None, random_weights: bool = False, device: Any = "cpu",
               text_cache_dir: str | None = None) -> tuple[Any, str]:
    """Build a SED model from one weight source and say which.

    Args:
        preset: registered preset; None infers it from the checkpoint.
        checkpoint: a sed-train checkpoint (``ckpt_*.pt``), a plain / converted state dict (``.pth``,
            ``.safetensors``), or an official one (recognised by its key prefixes).
        official_checkpoint: the released detectron2 ``.pth``, run through the converter.
        pretrained_clip: CLIP tag or file, used only with ``random_weights`` (decoder untrained).
        random_weights: allow building without a checkpoint.
        device: where to put the model.
        text_cache_dir: on-disk text-embedding cache (default ``$OVCORE_CACHE_DIR`` or ``~/.cache/ovcore``).

    Returns:
        ``(model in eval mode, description of the weights)``.

    Raises:
        ValueError: no / several weight sources, a missing file, an unknown preset, or weights that do not fit.
    """
    import sed
    from ovcore.text import weights_id_of

    if checkpoint is not None and official_checkpoint is not None:
        raise UsageError("pass either --checkpoint or --official-checkpoint, not both")
    if preset is not None and not sed.is_preset(preset):
        raise UsageError(f"--preset: unknown SED preset {preset!r}; available presets: {', '.join(sed.list_presets())}")
    state: Any = None
    source: Path | None = None
    if official_checkpoint is not None:
        state, preset, source = _official(official_checkpoint, preset)
        what = f"official checkpoint {source} (converted, {preset})"
    elif checkpoint is not None:
        source = require_file(checkpoint, "--checkpoint")
        assert source is not None
        state = read_weights(source, "--checkpoint")
        preset = preset or _checkpoint_preset(state, source)
        if preset is None or not sed.is_preset(preset):
            raise UsageError(
                f"--preset: cannot tell which preset --checkpoint {str(source)!r} belongs to; pass --preset NAME "
                f"(one of {', '.join(sed.list_presets())})"
            )
        it = state.get("iteration") if isinstance(state, dict) else None
        what = f"checkpoint {source}" + (f" (iteration {it})" if it is not None else "") + f", preset {preset}"
    elif random_weights:
        preset = preset or "sed_tiny"
        what = f"preset {preset} with an UNTRAINED decoder and CLIP {pretrained_clip or 'random init'}"
    else:
        raise UsageError(
            "no weights: pass --checkpoint PATH (a sed-train checkpoint or a state dict), --official-checkpoint PATH "
            "(the released .pth), or --random-weights to run an untrained model"
        )
    try:
        if state is not None:
            model = sed.create_sed(preset, pretrained_clip=None, checkpoint=state)
        else:
            model = sed.create_sed(preset, pretrained_clip=pretrained_clip)
    except ValueError as err:
        option = "--official-checkpoint" if official_checkpoint else "--checkpoint" if checkpoint else "--preset"
        raise ValueError(f"{option}: {err}") from None
    if source is not None:
        model.weights_id = weights_id_of(source)  # lets big vocabularies come from the on-disk embedding cache
    model.cache_dir = text_cache_dir
    return model.to(device).eval(), what


@dataclass(kw_only=True)
class SEDModelOptions(ModelOptions):
    """The options that choose SED's weights and inference settings (read by :func:`load_sed`)."""

    preset: str | None = None
    """SED preset (sed.list_presets()); default: read from the checkpoint (sed_tiny with --random-weights)."""

    checkpoint: str | None = None
    """Weights: a sed-train checkpoint (ckpt_*.pt), a plain or sed-convert state dict (.pth / .safetensors)."""

    official_checkpoint: str | None = None
    """Weights: an official SED release (.pth, detectron2 layout), converted on the fly (variant inferred)."""

    random_weights: bool = False
    """Run without a checkpoint (untrained decoder): a pipeline / speed check only, the results are meaningless."""

    pretrained_clip: str | None = None
    """With --random-weights: CLIP tag or local file to start from (default: random CLIP)."""

    topk: int | None = None
    """Category early rejection: keep the top-k classes per pixel (SED-fast, eval.sh's fast version: 8); 0 turns it
    off; default the preset's (off; 8 for the _fast presets)."""

    pooling: int | None = None
    """Class-attention pooling at inference (eval.sh: 1); default the preset's (1)."""

    test_short_side: int | None = None
    """Resize the short side to this before the model (default the preset's: 640, long side <= 2560, as the official
    test mapper); 0 keeps the input size."""

    text_cache_dir: str | None = None
    """On-disk cache of text embeddings (default $OVCORE_CACHE_DIR/text_embeddings or ~/.cache/ovcore/...)."""

    def validate(self) -> None:
        """Check the inference options before the model is built; the messages name the flags."""
        check_min("--topk", self.topk, 0, hint="0 turns CER off")
        check_min("--pooling", self.pooling, 1)
        check_min("--test-short-side", self.test_short_side, 0, hint="0 skips the resize")


def load_sed(options: SEDModelOptions, device: Any) -> Any:
    """The loader of ``sed-predict`` / ``sed-eval``: :func:`load_model`, then the inference options.

    Returns:
        An ``ovcore.cmd.model.LoadedModel`` whose predict calls use the CER k in force (results ``_cer<k>``).
    """
    return loaded_sed(*model_from_options(options, device), options)


def model_from_options(options: SEDModelOptions, device: Any) -> tuple[Any, str]:
    """:func:`load_model` with the weight options of a command: ``(model in eval mode, description)``."""
    return load_model(
        preset=options.preset, checkpoint=options.checkpoint, official_checkpoint=options.official_checkpoint,
        pretrained_clip=options.pretrained_clip, random_weights=options.random_weights, device=device,
        text_cache_dir=options.text_cache_dir,
    )


def loaded_sed(model: Any, what: str, options: SEDModelOptions) -> Any:
    """A built SED model with the inference options of ``options`` applied, as an ``ovcore.cmd.model.LoadedModel``
    (``sed-eval --topk 1 2 4 8`` calls it once per k on the same model).

    Args:
        model: The model of :func:`load_model`.
        what: :func:`load_model`'s description of the weights.
        options: ``topk``, ``pooling`` and ``test_short_side`` are read.
    """
    from ovcore.cmd.model import LoadedModel

    topk = set_inference_options(model, topk=options.topk, pooling=options.pooling,
                                 test_short_side=options.test_short_side)
    cer = f"CER top-{topk}" if topk else "CER off"
    return LoadedModel(
        model, f"{what}; {cer}, pooling {model.decoder.pooling_eval}", predict_options={"k": topk},
        info={"cer_topk": topk}, eval_transform=eval_transform(model.cfg), result_suffix=f"_cer{topk}" if topk else "",
    )


# ------------------------------------------------------------------------------------------------- evaluation
def set_inference_options(model: Any, *, topk: int | None = None, pooling: int | None = None,
                          test_short_side: int | None = None) -> int | None:
    """Apply the evaluation settings to ``model`` and return the CER k in force (None: plain decoder).

    Args:
        topk: CER k; None keeps the preset's default (``cer_topk``: None, 8 for the ``_fast`` presets); 0 turns it off.
        pooling: class-attention pooling in eval mode (eval.sh: 1); None keeps the preset's.
        test_short_side: test resize (short side); None keeps the preset's (640 for the ConvNeXt presets), 0 skips.
    """
    check_min("--topk", topk, 0, hint="0 turns CER off")
    check_min("--pooling", pooling, 1)
    check_min("--test-short-side", test_short_side, 0, hint="0 skips the resize")
    if topk is not None:
        model.cfg.cer_topk = topk or None
    if pooling is not None:
        model.decoder.pooling_eval = pooling
    if test_short_side is not None:
        model.cfg.test_short_side = test_short_side or None
    return model.cfg.cer_topk


def eval_transform(cfg: Any) -> Callable[[dict], dict] | None:
    """The dataset side of the official test mapper: SEDTestTransform at the short side of an `SEDConfig` (None: no
    resize); the model then warps to its input size itself."""
    from ovcore.data import SEDTestTransform

    short = cfg.test_short_side
    return None if short is None else SEDTestTransform(short, cfg.test_max_size)


def evaluate_model(model: Any, dataset: Any, protocol: Any, *, topk: int | None, device: Any,
                   output_json: str | Path | None = None, progress: bool = True) -> dict[str, Any]:
    """Score ``model`` on ``dataset`` (``ovcore.cmd.evaluate.score``, detectron2 IoU convention): the periodic
    evaluation of ``sed-train`` and the evaluations of ``sed-demo``.

    With CER the results also hold ``cer_kept_mean``: the mean number of classes kept at each decoder stage.
    """
    from ovcore.cmd.evaluate import score
    from ovcore.cmd.model import LoadedModel
    from ovcore.files import write_json

    loaded = LoadedModel(model, "", predict_options={"k": topk})
    results = score(loaded, dataset, protocol, device=device, progress=progress, iou_convention="detectron2")
    results["cer_topk"] = topk
    kept = results["stats_mean"].get("kept")
    if topk is not None and kept:
        results["cer_kept_mean"] = kept
    if output_json is not None:
        write_json(output_json, results)
    return results


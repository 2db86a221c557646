"""Pieces shared by the SED command lines: benchmark names, datasets, weights, vocabularies (errors: ovcore.command)."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from ovcore.files import write_json

logger = logging.getLogger("sed.cli")

# The six runs of the official eval.sh, in its order (spec Appendix B): short name -> (ovcore.data name, title).
BENCHMARKS: dict[str, tuple[str, str]] = {
    "a847": ("ade20k_847", "A-847"),
    "pc459": ("pascal_context_459", "PC-459"),
    "a150": ("ade20k_150", "A-150"),
    "pc59": ("pascal_context_59", "PC-59"),
    "pas20": ("voc20", "PAS-20"),
    "pas20b": ("voc20b", "PAS-20b"),
}

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")


def say(line: str = "") -> None:
    """Print one line of command output to stdout, above any active progress bar (which is redrawn below it)."""
    from tqdm.auto import tqdm

    tqdm.write(line, file=sys.stdout)
    sys.stdout.flush()


def setup_logging(verbose: bool = False) -> None:
    """Warnings of every library, and the INFO lines of the engine, the evaluator and these commands (DEBUG with
    ``verbose``); third-party INFO chatter (open_clip's model-loading steps) stays hidden. Does nothing when the
    host process (an application, pytest) has configured logging already."""
    if logging.getLogger().handlers:
        return
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(message)s")
    for name in ("sed", "ovcore"):
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.INFO)


def require_file(path: str | Path | None, option: str) -> Path | None:
    """``Path(path)`` if it is an existing file (None stays None); otherwise a ValueError naming the option."""
    if path is None:
        return None
    p = Path(path).expanduser()
    if not p.is_file():
        raise ValueError(f"{option}: file not found: {str(p)!r}")
    return p


# ------------------------------------------------------------------------------------------------- benchmarks
@dataclass(frozen=True)
class Benchmark:
    """One evaluation target: a file-name key, the ovcore.data dataset name and a title for tables."""

    key: str
    dataset: str
    title: str


def _normalise(name: str) -> str:
    return name.strip().lower().replace("-", "").replace("_", "")


def resolve_benchmarks(names: Sequence[str], option: str = "--benchmarks") -> list[Benchmark]:
    """Short names (``a847 pc459 a150 pc59 pas20 pas20b``, any case, dashes allowed), ``all``, or dataset names.

    Raises:
        ValueError: empty list or an unknown name (the message lists the valid ones).
    """
    from ovcore.data import list_datasets

    datasets = list_datasets()
    by_title = {_normalise(title): key for key, (_, title) in BENCHMARKS.items()}
    out: list[Benchmark] = []
    for raw in names:
        name = raw.strip()
        if name.lower() == "all":
            keys = list(BENCHMARKS)
        elif name in datasets:
            short = next((k for k, (d, _) in BENCHMARKS.items() if d == name), None)
            out.append(Benchmark(short or name, name, BENCHMARKS[short][1] if short else name))
            continue
        elif _normalise(name) in BENCHMARKS:
            keys = [_normalise(name)]
        elif _normalise(name) in by_title:
            keys = [by_title[_normalise(name)]]
        else:
            raise ValueError(
                f"{option}: unknown benchmark {raw!r}; use {', '.join(BENCHMARKS)} or all (the official eval.sh), "
                f"or a dataset name from ovcore.data: {', '.join(datasets)}"
            )
        out.extend(Benchmark(k, *BENCHMARKS[k]) for k in keys)
    if not out:
        raise ValueError(f"{option}: no benchmark given")
    unique: dict[str, Benchmark] = {}
    for b in out:
        unique.setdefault(b.key, b)
    return list(unique.values())


# ------------------------------------------------------------------------------------------------- datasets
@dataclass(frozen=True)
class EvalProtocol:
    """How one dataset is scored: the model's vocabulary, the scored classes, the ignore value and the remap."""

    dataset: str
    vocabulary: list[str]
    """Names given to the model (59 for PAS-20b: 20 VOC classes plus 39 background proxies)."""
    score_names: list[str]
    """Names of the ``num_classes`` scored classes."""
    num_classes: int
    ignore_index: int
    pred_remap: Callable[[torch.Tensor], torch.Tensor] | None


def eval_protocol(dataset: str) -> EvalProtocol:
    """The scoring protocol of a registered dataset (PAS-20b: predictions >= 20 count as background)."""
    from ovcore.data import dataset_info, get_class_names
    from ovcore.metrics import voc20b_collapse

    info = dataset_info(dataset)
    names = get_class_names(dataset)
    remap = None
    scored = names[: info.num_classes]
    if info.merge_predictions_from is not None:
        fg = info.merge_predictions_from
        remap = functools.partial(voc20b_collapse, num_fg=fg)
        scored = names[:fg] + ["background"]
    return EvalProtocol(dataset, names, scored, info.num_classes, info.ignore_index, remap)


def build_split(
    name: str,
    root: str | Path | None,
    split: str,
    transform: Callable[[dict], dict] | None = None,
    *,
    memory_fallback: bool = True,
) -> Dataset:
    """``ovcore.data.build_dataset``, except that ``demo`` without a prepared ``<root>/demo`` folder is generated in
    memory (the same scenes ``ovcore demo-data`` writes: 64 train / 16 val, 128x128, seed 0), and the output says so.

    Args:
        memory_fallback: allow that fallback; the commands pass False when the user gave ``--data-root``, so a
            root without the demo data is an error rather than a silent switch to the built-in scenes.

    Raises:
        FileNotFoundError: the split is not prepared under the root (the demo one only without ``memory_fallback``).
    """
    from ovcore.data import DemoSegmentation, build_dataset, default_root

    base = Path(root) if root is not None else default_root()
    if name == "demo" and not (base / "demo" / "images" / split).is_dir():
        if not memory_fallback:
            raise FileNotFoundError(
                f"--data-root {base}: no prepared demo {split} split in {base / 'demo'}; write it with "
                f"`ovcore demo-data --root {base}`, or leave out --data-root to use the built-in demo scenes"
            )
        say(f"note: no prepared demo data under {base}: using the built-in demo scenes ({split} split, in memory)")
        return DemoSegmentation(num_images=64 if split == "train" else 16, size=128, split=split, transform=transform)
    return build_dataset(name, base, split, transform)


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


def load_model(
    *,
    preset: str | None,
    checkpoint: str | None = None,
    official_checkpoint: str | None = None,
    pretrained_clip: str | None = None,
    random_weights: bool = False,
    device: torch.device | str = "cpu",
    text_cache_dir: str | None = None,
) -> tuple[Any, str]:
    """Build a SED model from one weight source and say which.

    Args:
        preset: registered preset; None infers it from the checkpoint (ovcore.train checkpoints store it in their
            config, ``sed-convert`` outputs in their ``preset`` entry, official ones by their CLIP stem width).
        checkpoint: an ovcore.train checkpoint (``ckpt_*.pt``), a plain / converted state dict (``.pth``,
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
    from ovcore.train import CHECKPOINT_FORMAT
    from sed.convert import VARIANTS, convert_official_checkpoint, infer_variant

    if checkpoint is not None and official_checkpoint is not None:
        raise ValueError("pass either --checkpoint or --official-checkpoint, not both")
    if preset is not None and not sed.is_preset(preset):
        raise ValueError(f"--preset: unknown SED preset {preset!r}; available presets: {', '.join(sed.list_presets())}")
    state: Any = None
    source: Path | None = None
    if official_checkpoint is not None:
        source = require_file(official_checkpoint, "--official-checkpoint")
        raw = read_weights(source, "--official-checkpoint")
        try:
            variant = infer_variant(raw) if preset is None else preset
            state = convert_official_checkpoint(raw, variant)
        except ValueError as err:
            raise ValueError(f"--official-checkpoint {str(source)!r}: {err}") from None
        preset = preset or VARIANTS[variant]
        what = f"official checkpoint {source} (converted, {preset})"
    elif checkpoint is not None:
        source = require_file(checkpoint, "--checkpoint")
        state = read_weights(source, "--checkpoint")
        if preset is None:
            if isinstance(state, dict) and state.get("format") == CHECKPOINT_FORMAT:
                preset = (state.get("config") or {}).get("model")
            elif isinstance(state, dict) and isinstance(state.get("preset"), str):
                preset = state["preset"]
            elif source.suffix == ".safetensors":
                preset = _safetensors_preset(source)
            if preset is None and isinstance(state, dict):
                with contextlib.suppress(ValueError):
                    preset = VARIANTS[infer_variant(state)]
            if preset is None or not sed.is_preset(preset):
                raise ValueError(
                    f"--preset: cannot tell which preset --checkpoint {str(source)!r} belongs to; pass --preset NAME "
                    f"(one of {', '.join(sed.list_presets())})"
                )
        it = state.get("iteration") if isinstance(state, dict) else None
        what = f"checkpoint {source}" + (f" (iteration {it})" if it is not None else "") + f", preset {preset}"
    elif random_weights:
        preset = preset or "sed_tiny"
        what = f"preset {preset} with an UNTRAINED decoder and CLIP {pretrained_clip or 'random init'}"
    else:
        raise ValueError(
            "no weights: pass --checkpoint PATH (a sed-train checkpoint or a state dict), --official-checkpoint PATH "
            "(the released .pth), or --random-weights to run an untrained model"
        )
    assert preset is not None
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


@dataclass(kw_only=True)  # keyword-only, so commands can add positional fields (sed-predict's INPUTS)
class ModelOptions:
    """The options that choose a command's SED weights and inference settings (see :func:`load_model_from`)."""

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
        from ovcore.command import check_min

        check_min("--topk", self.topk, 0, hint="0 turns CER off")
        check_min("--pooling", self.pooling, 1)
        check_min("--test-short-side", self.test_short_side, 0, hint="0 skips the resize")


def load_model_from(options: ModelOptions, device: torch.device | str) -> tuple[Any, str, int | None]:
    """:func:`load_model` from the weight options, then :func:`set_inference_options` from the inference ones.

    Returns:
        ``(model in eval mode, description of the weights, CER k in force or None)``.
    """
    model, what = load_model(
        preset=options.preset,
        checkpoint=options.checkpoint,
        official_checkpoint=options.official_checkpoint,
        pretrained_clip=options.pretrained_clip,
        random_weights=options.random_weights,
        device=device,
        text_cache_dir=options.text_cache_dir,
    )
    topk = set_inference_options(
        model, topk=options.topk, pooling=options.pooling, test_short_side=options.test_short_side
    )
    return model, what, topk


# ------------------------------------------------------------------------------------------------- vocabularies
def parse_class_list(text: str, option: str = "--classes") -> list[str]:
    """``"cat,dog,grass|lawn"`` -> ``["cat", "dog", "grass, lawn"]`` (``|`` joins synonyms of one class).

    Raises:
        ValueError: no class name in the text.
    """
    names = []
    for item in text.split(","):
        synonyms = [s.strip() for s in item.split("|") if s.strip()]
        if synonyms:
            names.append(", ".join(synonyms))
    if not names:
        raise ValueError(f"{option}: the vocabulary is empty (give class names separated by commas)")
    return names


def read_class_file(path: str | Path, option: str = "--classes-file") -> list[str]:
    """Class names from a JSON array (entries are strings, ``", "`` separating synonyms, or lists of synonyms) or a
    text file (one class per line; blank lines and ``#`` comments skipped).

    Raises:
        ValueError: missing file, bad JSON, or no class name.
    """
    p = require_file(path, option)
    assert p is not None
    text = p.read_text(encoding="utf-8")
    names: list[str] = []
    if p.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"{option}: {str(p)!r} is not valid JSON: {err}") from None
        if not isinstance(data, list):
            raise ValueError(f"{option}: {str(p)!r} must hold a JSON array of class names")
        for entry in data:
            if isinstance(entry, list):
                entry = ", ".join(str(s).strip() for s in entry if str(s).strip())
            if not isinstance(entry, str):
                raise ValueError(f"{option}: {str(p)!r} has a non-string entry {entry!r}")
            if entry.strip():
                names.append(entry.strip())
    else:
        for line in text.splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                names.append(line)
    if not names:
        raise ValueError(f"{option}: the vocabulary in {str(p)!r} is empty")
    return names


def resolve_vocabulary(classes: str | None, classes_file: str | None, dataset_classes: str | None) -> list[str]:
    """Exactly one of ``--classes``, ``--classes-file`` and ``--dataset-classes`` -> the class names."""
    given = [o for o, v in (("--classes", classes), ("--classes-file", classes_file),
                            ("--dataset-classes", dataset_classes)) if v is not None]
    if len(given) != 1:
        raise ValueError(
            "give the vocabulary with exactly one of --classes 'cat,dog,grass', --classes-file FILE or "
            f"--dataset-classes NAME (got {', '.join(given) if given else 'none'})"
        )
    if classes is not None:
        return parse_class_list(classes)
    if classes_file is not None:
        return read_class_file(classes_file)
    from ovcore.data import get_class_names

    try:
        return get_class_names(str(dataset_classes))
    except ValueError as err:
        raise ValueError(f"--dataset-classes: {err}") from None


@contextlib.contextmanager
def quiet_logger(name: str, quiet: bool = True) -> Iterator[None]:
    """Raise ``name``'s level to WARNING for the block (e.g. ovcore.evaluate's per-class tables), then restore it."""
    logger_ = logging.getLogger(name)
    level = logger_.level
    if quiet:
        logger_.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger_.setLevel(level)


@contextlib.contextmanager
def vocabulary(model: Any, names: Sequence[str]) -> Iterator[None]:
    """Switch ``model`` to ``names`` for the block and back afterwards (embeddings are cached in memory)."""
    previous = list(model.class_names)
    model.set_vocabulary(list(names))
    try:
        yield
    finally:
        if previous:
            model.set_vocabulary(previous)


# ------------------------------------------------------------------------------------------------- evaluation
def set_inference_options(model: Any, *, topk: int | None = None, pooling: int | None = None,
                          test_short_side: int | None = None) -> int | None:
    """Apply the evaluation settings to ``model`` and return the CER k in force (None: plain decoder).

    Args:
        topk: CER k; None keeps the preset's default (``cer_topk``: None, 8 for the ``_fast`` presets); 0 turns it off.
        pooling: class-attention pooling in eval mode (eval.sh: 1); None keeps the preset's.
        test_short_side: test resize (short side); None keeps the preset's (640 for the ConvNeXt presets), 0 skips.
    """
    if topk is not None:
        if topk < 0:
            raise ValueError(f"--topk must be >= 0 (0 turns CER off), got {topk}")
        model.cfg.cer_topk = topk or None
    if pooling is not None:
        if pooling < 1:
            raise ValueError(f"--pooling must be >= 1, got {pooling}")
        model.decoder.pooling_eval = pooling
    if test_short_side is not None:
        if test_short_side < 0:
            raise ValueError(f"--test-short-side must be >= 0 (0 skips the resize), got {test_short_side}")
        model.cfg.test_short_side = test_short_side or None
    return model.cfg.cer_topk


def eval_transform(cfg: Any) -> Callable[[dict], dict] | None:
    """The dataset side of the official test mapper: SEDTestTransform at the short side of an `SEDConfig` (None: no
    resize); the model then warps to its input size itself."""
    from ovcore.data import SEDTestTransform

    short = cfg.test_short_side
    return None if short is None else SEDTestTransform(short, cfg.test_max_size)


def first_images(dataset: Dataset, n: int | None, option: str) -> Dataset:
    """The first ``n`` samples of ``dataset`` (all of them for None), for quick evaluations.

    Raises:
        ValueError: ``n < 1`` (the message names ``option``).
    """
    if n is None:
        return dataset
    if n < 1:
        raise ValueError(f"{option} must be >= 1, got {n}")
    from torch.utils.data import Subset

    return Subset(dataset, range(min(n, len(dataset))))


def evaluate_model(
    model: Any,
    dataset: Dataset,
    protocol: EvalProtocol,
    *,
    topk: int | None,
    device: torch.device | str,
    output_json: str | Path | None = None,
    progress: bool = True,
    distributed: bool = False,
    warmup: int = 2,
    num_workers: int = 0,
) -> dict[str, Any]:
    """Score ``model`` on ``dataset`` with ``ovcore.evaluate`` (detectron2 IoU convention, SED's protocol).

    The vocabulary is switched to the dataset's for the run and restored afterwards. With CER the results also hold
    ``cer_kept_mean``: the mean number of classes kept at each of the three decoder layers.
    """
    from ovcore.evaluate import evaluate

    kept: list[list[int]] = []

    def predict(images: torch.Tensor) -> torch.Tensor:
        out = model.predict(images, k=topk)
        kept.extend(out["stats"]["kept"])
        return out["probs"]

    with vocabulary(model, protocol.vocabulary):
        results = evaluate(
            predict,
            dataset,
            num_classes=protocol.num_classes,
            class_names=protocol.score_names,
            device=device,
            warmup=warmup,
            progress=progress,
            distributed=distributed,
            num_workers=num_workers,
            pred_remap=protocol.pred_remap,
            ignore_index=protocol.ignore_index,
            iou_convention="detectron2",
        )
    results["dataset"] = protocol.dataset
    results["cer_topk"] = topk
    results["vocabulary_size"] = len(protocol.vocabulary)
    if topk is not None and kept:
        results["cer_kept_mean"] = [sum(k[i] for k in kept) / len(kept) for i in range(3)]
    if output_json is not None:
        write_json(output_json, results)
    return results


def fmt(value: Any, digits: int = 1) -> str:
    """A number for tables ('-' for None / nan)."""
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    return f"{value:.{digits}f}"

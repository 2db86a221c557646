"""The web demo's work, in plain functions a test can call without a browser: checking the inputs, choosing and
caching the model, running ``predict`` and rendering what the page shows.

Every check raises ``ValueError`` with one sentence that names the field and says what to do; the page shows that
sentence (``ovseg_app.ui``), never a traceback.
"""

from __future__ import annotations

import html
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "DEMO_CHECKPOINT",
    "DEMO_NOTE",
    "RANDOM_NOTE",
    "AppSettings",
    "ModelCache",
    "SegmentResult",
    "dataset_choices",
    "default_weights",
    "is_demo_checkpoint",
    "legend_html",
    "load_image",
    "method_of",
    "parse_vocabulary",
    "resolve_device",
    "segment",
    "weights_note",
    "write_samples",
]

logger = logging.getLogger(__name__)

DEMO_CHECKPOINT = Path("runs/demo/train/checkpoints/ckpt_0000800.pt")
"""The checkpoint ``uv run sed-demo`` writes (relative to the working directory), served when no weights are given."""
DEMO_PRESET = "sed_tiny"
DEMO_NOTE = (
    "These are random-CLIP demo weights: sed_tiny trained by `uv run sed-demo` on procedural scenes (sky, grass, "
    "water, sand and coloured shapes), from a CLIP with random weights. They show the pipeline works; they do not "
    "segment real photos. Give a pretrained checkpoint or an hf-hub: id for real images."
)
RANDOM_NOTE = (
    "No demo checkpoint found ({path}): sed_tiny runs with RANDOM weights, so the output is noise. Run "
    "`uv run sed-demo` (a few minutes on a CPU) to train the demo checkpoint, or give weights."
)
_SAMPLE_SCENES = (0, 1, 2)
_SAMPLE_SIZE = 256


@dataclass(frozen=True)
class AppSettings:
    """What the app was started with (``ovseg-app`` options).

    Attributes:
        preset: The preset selected when the page opens.
        weights: Weights shown when the page opens ("" for the preset's own).
        device: ``"cpu"``, ``"cuda"`` or ``"auto"`` (CUDA when available).
        max_image_side: Largest accepted image side in pixels.
        max_classes: Largest accepted vocabulary.
        max_name_chars: Longest accepted class name (synonyms included).
        max_vocabulary_chars: Longest accepted vocabulary text.
        cache_size: Models kept in memory.
        queue_size: Requests that may wait in the queue.
    """

    preset: str = DEMO_PRESET
    weights: str = ""
    device: str = "auto"
    max_image_side: int = 4096
    max_classes: int = 1000
    max_name_chars: int = 128
    max_vocabulary_chars: int = 20000
    cache_size: int = 2
    queue_size: int = 16

    def __post_init__(self) -> None:
        for name in ("max_image_side", "max_classes", "max_name_chars", "max_vocabulary_chars", "cache_size",
                     "queue_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")


# --------------------------------------------------------------------------------------------------- defaults
def default_weights(preset: str = DEMO_PRESET, root: Path | None = None) -> str:
    """The demo checkpoint when ``preset`` is the demo's and ``sed-demo`` has written it, else "" (the preset's own)."""
    path = (root or Path.cwd()) / DEMO_CHECKPOINT
    return str(path) if preset == DEMO_PRESET and path.is_file() else ""


def is_demo_checkpoint(weights: str) -> bool:
    """Whether ``weights`` is a checkpoint of a ``sed-demo`` run (``<run>/train/checkpoints/*.pt`` next to the
    run's ``metrics.json``), or the default demo checkpoint path."""
    if not weights:
        return False
    path = Path(weights).expanduser()
    if path.parts[-len(DEMO_CHECKPOINT.parts):] == DEMO_CHECKPOINT.parts:
        return True
    marker = path.parent.parent.parent / "metrics.json"
    try:
        return path.parent.name == "checkpoints" and '"sed-demo"' in marker.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False


def weights_note(preset: str, weights: str) -> str:
    """The honesty note: demo weights are random-CLIP ones; the demo preset without weights gives noise."""
    if is_demo_checkpoint(weights):
        return DEMO_NOTE
    if preset == DEMO_PRESET and not weights:
        return RANDOM_NOTE.format(path=DEMO_CHECKPOINT)
    return ""


def dataset_choices() -> list[str]:
    """Registered datasets whose class list can be picked as the vocabulary."""
    from ovcore.data import list_datasets

    return list_datasets()


def resolve_device(device: str) -> str:
    """``"auto"`` -> ``"cuda"`` when a GPU is visible, else ``"cpu"``; other values as given.

    Raises:
        ValueError: an unknown device name.
        RuntimeError: ``"cuda"`` asked for on a machine without a usable GPU.
    """
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise ValueError(f"--device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"--device {device}: no CUDA device is available here; use --device cpu or auto")
    return device


def write_samples(folder: Path) -> list[str]:
    """Write a few procedural demo scenes (``ovcore.data.generate_demo_scene``) as PNGs; returns their paths."""
    from PIL import Image

    from ovcore.data.demo import generate_demo_scene

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in _SAMPLE_SCENES:
        image, _ = generate_demo_scene(index, size=_SAMPLE_SIZE, seed=0, split="val")
        path = folder / f"demo_scene_{index}.png"
        Image.fromarray(image).save(path)
        paths.append(str(path))
    return paths


# ----------------------------------------------------------------------------------------------------- inputs
def parse_vocabulary(text: str | None, settings: AppSettings) -> list[str]:
    """The class names of the vocabulary box: a registered dataset's name, or ``"cat, dog, grass|lawn"``.

    Unlike the command line's ``--vocabulary``, no file path is read: a page must not open files on the server.

    Raises:
        ValueError: empty, too long, a duplicate or empty name, a name over the length limit, or too many classes.
    """
    from ovcore.cmd.vocabulary import parse_class_list
    from ovcore.data import get_class_names, list_datasets

    text = (text or "").strip()
    if not text:
        raise ValueError("vocabulary: it is empty; type class names separated by commas (e.g. 'cat, dog, grass') "
                         "or pick a dataset")
    if len(text) > settings.max_vocabulary_chars:
        raise ValueError(f"vocabulary: {len(text)} characters is over the limit of {settings.max_vocabulary_chars}")
    if text in list_datasets():
        return get_class_names(text)
    names = parse_class_list(text, "vocabulary")
    long = [n for n in names if len(n) > settings.max_name_chars]
    if long:
        raise ValueError(f"vocabulary: class names may have at most {settings.max_name_chars} characters; "
                         f"{len(long)} are longer (first: {long[0][:40]!r}...)")
    if len(names) > settings.max_classes:
        raise ValueError(f"vocabulary: {len(names)} classes is over the limit of {settings.max_classes}")
    return names


def load_image(path: str | Path | None, settings: AppSettings) -> np.ndarray:
    """The uploaded file as ``uint8 (H, W, 3)`` RGB, after checking its size from the header (before decoding).

    Raises:
        ValueError: no image, a file that is not an image, or a side over ``settings.max_image_side``.
    """
    from PIL import Image, UnidentifiedImageError

    from ovcore.data.io import read_image

    if path is None or not str(path):
        raise ValueError("image: none given; upload an image or pick a sample")
    name = Path(path).name
    try:
        with Image.open(path) as im:
            width, height = im.size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as err:
        raise ValueError(f"image: {name!r} is not an image this app can read ({type(err).__name__}); upload a "
                         "PNG, JPEG, WebP, BMP or TIFF file") from None
    if max(width, height) > settings.max_image_side:
        raise ValueError(f"image: {name!r} is {width}x{height} pixels; the limit is {settings.max_image_side} per "
                         "side, resize it first")
    try:
        return read_image(path).permute(1, 2, 0).contiguous().numpy()
    except ValueError as err:
        raise ValueError(f"image: {name!r} cannot be decoded ({err}); upload another file") from None


# ----------------------------------------------------------------------------------------------------- models
def method_of(preset: str, weights: str = "") -> tuple[str, str]:
    """``(method, preset)`` a request will run: a Hub id or pretrained folder names its own (in its config.json).

    Raises:
        ValueError: an unknown preset or a bad pretrained source.
        RuntimeError: an ``hf-hub:`` id that is neither reachable nor cached.
    """
    from ovcore.hub import is_pretrained_source, read_pretrained_config
    from ovcore.method import find_method

    if weights and is_pretrained_source(weights):
        method, saved_preset, _ = read_pretrained_config(weights)
        return method, saved_preset
    if not preset:
        raise ValueError("model: choose a preset")
    return find_method(preset).name, preset


def _check_weights(weights: str) -> None:
    from ovcore.hub import HUB_PREFIX

    if weights and not weights.startswith(HUB_PREFIX) and not Path(weights).expanduser().exists():
        raise ValueError(f"weights: {weights!r} is not a file or folder on the server; give a checkpoint path, an "
                         "hf-hub:org/repo id, or leave it empty for the preset's own weights")


def _stamp(weights: str) -> float:
    """Modification time of local weights: a checkpoint rewritten in place (a new sed-demo run) is built afresh."""
    path = Path(weights).expanduser()
    try:
        return path.stat().st_mtime if weights and path.exists() else 0.0
    except OSError:
        return 0.0


class ModelCache:
    """Built models kept per ``(preset, weights)``, least recently used dropped first; one build at a time."""

    def __init__(self, device: str, size: int = 2) -> None:
        self.device = device
        self.size = size
        self._models: OrderedDict[tuple[str, str, float], Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, preset: str, weights: str = "") -> tuple[Any, float]:
        """The model and the seconds spent building it (0 when cached).

        Raises:
            ValueError: unknown preset, missing weights file, or weights that do not fit the preset.
            RuntimeError: weights that cannot be fetched (offline).
        """
        from ovcore.hub import is_pretrained_source
        from ovcore.method import create_model

        weights = weights.strip()
        key = (preset, weights, _stamp(weights))
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key], 0.0
            _check_weights(weights)
            start = time.perf_counter()
            if weights and is_pretrained_source(weights):
                model = create_model(weights)
            else:
                model = create_model(preset, checkpoint=str(Path(weights).expanduser()) if weights else None)
            model = model.to(self.device).eval()
            self._models[key] = model
            while len(self._models) > self.size:
                self._models.popitem(last=False)
            return model, time.perf_counter() - start

    def __len__(self) -> int:
        return len(self._models)


# -------------------------------------------------------------------------------------------------- predicting
@dataclass
class SegmentResult:
    """What one request shows.

    Attributes:
        overlay: ``uint8 (H', W', 3)`` image with the label map blended in.
        legend: ``(name, "#rrggbb", area %)`` of each class present, largest first.
        kept: Classes kept per CER stage (empty when the method has no stages or CER is off).
        num_classes: Vocabulary size.
        latency_ms: ``predict`` time.
        load_s: Seconds spent building the model for this request (0 when cached).
        method: The method that ran.
        preset: The preset that ran.
        note: The weights' honesty note ("" if none).
    """

    overlay: np.ndarray
    legend: list[tuple[str, str, float]]
    kept: list[int]
    num_classes: int
    latency_ms: float
    load_s: float
    method: str
    preset: str
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def kept_text(self) -> str:
        """``"stage 1: 5 of 8, stage 2: 4 of 8, stage 3: 4 of 8"``, or why there is nothing to show."""
        if not self.kept:
            return "no CER stages (the method has none, or CER is off)"
        return ", ".join(f"stage {i}: {k} of {self.num_classes}" for i, k in enumerate(self.kept, 1))

    def status(self) -> str:
        """One line for the status box."""
        load = f", model built in {self.load_s:.2f} s" if self.load_s else ""
        text = f"Done: {self.method} / {self.preset}, {self.num_classes} classes, {self.latency_ms:.0f} ms{load}."
        return f"{text} {self.note}" if self.note else text


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def segment(
    cache: ModelCache,
    image: np.ndarray,
    class_names: list[str],
    preset: str,
    weights: str = "",
    cer_k: int = 0,
) -> SegmentResult:
    """Run a model on one image and render the overlay and legend.

    Args:
        cache: Where models are built and kept.
        image: ``uint8 (H, W, 3)`` RGB.
        class_names: A checked vocabulary (:func:`parse_vocabulary`).
        preset: Preset name (ignored when ``weights`` is a Hub id or pretrained folder, which name their own).
        weights: Checkpoint file, ``hf-hub:`` id, pretrained folder, or "" for the preset's own weights.
        cer_k: SED's category early rejection top-k; 0 = off (the plain decoder). Ignored by other methods.

    Raises:
        ValueError, RuntimeError: bad weights, a model that cannot be built, or a bad option.
    """
    import torch

    from ovcore.cmd.model import as_prediction
    from ovcore.vis import legend_entries, render_overlay

    method, preset = method_of(preset, weights)
    model, load_s = cache.get(preset, weights)
    options: dict[str, Any] = {}
    if method == "sed":
        # k >= the vocabulary keeps every class: the plain decoder, also for _fast presets whose default is CER.
        options["k"] = int(cer_k) if cer_k and cer_k > 0 else len(class_names)
    batch = torch.from_numpy(image).permute(2, 0, 1)[None].contiguous().to(cache.device)
    _sync(cache.device)
    start = time.perf_counter()
    pred = as_prediction(model.predict(batch, class_names=class_names, **options), class_names)
    _sync(cache.device)
    latency_ms = 1000 * (time.perf_counter() - start)
    labels = pred.labels[0].cpu().numpy()
    stats = pred.stats[0] if pred.stats else {}
    kept = [int(k) for k in stats.get("kept") or []] if method == "sed" and cer_k and cer_k > 0 else []
    overlay = np.asarray(render_overlay(image, labels, class_names, legend=False, side_by_side=False))
    legend = [
        (e.name, "#{:02x}{:02x}{:02x}".format(*e.colour), round(100.0 * e.fraction, 2))
        for e in legend_entries(labels, class_names)
    ]
    return SegmentResult(overlay, legend, kept, len(class_names), latency_ms, load_s, method, preset,
                         note=weights_note(preset, weights))


def legend_html(rows: list[tuple[str, str, float]], num_classes: int) -> str:
    """The legend as an HTML table (colour swatch, class, area %); names are escaped (they are user input)."""
    if not rows:
        return "<p>No result yet.</p>"
    body = "".join(
        f'<tr><td><span style="display:inline-block;width:1.2em;height:1.2em;background:{colour};'
        f'border:1px solid #444;vertical-align:middle"></span></td><td class="legend-name">{html.escape(name)}</td>'
        f'<td style="text-align:right">{area:.1f} %</td></tr>'
        for name, colour, area in rows
    )
    absent = num_classes - len(rows)
    tail = f"<p>{absent} other class{'es' if absent != 1 else ''} cover no pixel.</p>" if absent > 0 else ""
    return (f'<table class="legend"><thead><tr><th></th><th>class</th><th>area</th></tr></thead>'
            f"<tbody>{body}</tbody></table>{tail}")

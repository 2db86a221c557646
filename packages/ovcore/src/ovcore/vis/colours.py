"""Class colours: the standard palettes of the benchmark datasets, and a fixed colour per class name otherwise.

* A vocabulary equal to a registered dataset's class list (compared after :func:`normalise_name`) gets that
  dataset's standard palette: PASCAL VOC's bit-interleaved colour map, the ADE20K-150 palette of the MIT
  scene-parsing benchmark, and the COCO-Stuff-171 and PASCAL Context-59 palettes of mmsegmentation. Those are data
  (``ovcore/vis/palettes/*.json``), except VOC's, which is a rule and is generated.
* Any other vocabulary gets a colour per normalised class name: a few everyday names have a natural colour
  (:data:`NATURAL_COLOURS`, sky is light blue and grass green), a name with a colour word is drawn in that colour
  (:data:`COLOUR_WORDS`, "red circle" is red); every other name picks an entry of a fixed
  256-colour palette (``distinct_256.json``, farthest-point samples in CIELAB, see :func:`distinct_palette`) by a
  stable hash of the name. The same name therefore has the same colour in every image and every vocabulary, unless
  it collides inside one vocabulary: then the later name (names are visited in a fixed order that does not depend
  on the vocabulary's order) steps to the next free palette entry.

numpy only; the dataset registry (which imports torch) is consulted lazily, on the first dataset comparison.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources

import numpy as np

__all__ = [
    "NATURAL_COLOURS",
    "COLOUR_WORDS",
    "preferred_colour",
    "MIN_DELTA_E",
    "normalise_name",
    "voc_colormap",
    "dataset_palette",
    "datasets_with_palettes",
    "distinct_palette",
    "name_colours",
    "palette_for",
    "srgb_to_lab",
    "generate_distinct_palette",
    "matching_dataset",
]

MIN_DELTA_E = 10.0
"""Two colours of one vocabulary closer than this (CIE76 distance in CIELAB) count as a collision."""

NATURAL_COLOURS: Mapping[str, tuple[int, int, int]] = {
    # Everyday scene names with a colour people expect; pairwise at least MIN_DELTA_E apart (a test checks).
    "sky": (120, 185, 245),
    "grass": (60, 170, 50),
    "tree": (25, 100, 35),
    "water": (20, 80, 190),
    "sea": (0, 120, 160),
    "road": (128, 128, 128),
    "sidewalk": (200, 170, 200),
    "building": (170, 90, 60),
    "wall": (215, 205, 180),
    "person": (220, 20, 60),
    "sand": (230, 200, 120),
    "snow": (245, 250, 255),
    "mountain": (130, 95, 70),
}

COLOUR_WORDS: Mapping[str, tuple[int, int, int]] = {
    # A name that says its colour ("red circle", "yellow taxi") is drawn in it; NATURAL_COLOURS wins over this.
    "red": (230, 25, 35),
    "orange": (255, 140, 0),
    "yellow": (255, 215, 0),
    "green": (30, 190, 60),
    "blue": (30, 60, 230),
    "purple": (130, 40, 180),
    "pink": (255, 130, 190),
    "brown": (140, 80, 30),
    "black": (35, 35, 35),
    "white": (250, 250, 250),
    "grey": (150, 150, 150),
    "gray": (150, 150, 150),
}

# Which palette file each registered dataset uses: the zero-shot variants share their parent's palette, PAS-20b
# colours its 20 VOC ids and falls back to per-name colours for the extra background names.
_DATASET_PALETTES: Mapping[str, str] = {
    "ade20k_150": "ade20k_150",
    "coco_stuff_171": "coco_stuff_171",
    "coco_stuff_zs": "coco_stuff_171",
    "pascal_context_59": "pascal_context_59",
    "context_zs": "pascal_context_59",
    "voc20": "voc",
    "voc_zs": "voc",
    "voc20b": "voc",
}


def normalise_name(name: str) -> str:
    """The key a class name is coloured and compared by: first synonym, lower case, single spaces.

    ``"person, individual, someone"`` and ``"Person"`` give ``"person"``; ``"bed "`` gives ``"bed"``.
    """
    first = name.split(",")[0]
    return " ".join(first.replace("_", " ").lower().split())


def voc_colormap(n: int = 256) -> np.ndarray:
    """PASCAL VOC's colour map ``(n, 3) uint8``: the bits of the label id are dealt out to R, G and B from the
    most significant bit down (id 0 background black, 1 aeroplane (128, 0, 0), 2 bicycle (0, 128, 0), ...)."""
    if not 0 <= n <= 256:
        raise ValueError(f"voc_colormap: n must lie in 0..256, got {n}")
    ids = np.arange(n)
    cmap = np.zeros((n, 3), dtype=np.int64)
    for shift in range(8):  # three bits of the id per round, each to the next lower bit of its channel
        for channel in range(3):
            cmap[:, channel] |= ((ids >> (3 * shift + channel)) & 1) << (7 - shift)
    return cmap.astype(np.uint8)


@functools.cache
def _palette_file(stem: str) -> np.ndarray:
    resource = resources.files("ovcore").joinpath("vis").joinpath("palettes").joinpath(f"{stem}.json")
    if not resource.is_file():
        raise RuntimeError(f"package data file ovcore/vis/palettes/{stem}.json is missing; reinstall ovcore")
    colours = np.asarray(json.loads(resource.read_text(encoding="utf-8"))["colours"], dtype=np.int64)
    if colours.ndim != 2 or colours.shape[1] != 3 or colours.min() < 0 or colours.max() > 255:
        raise RuntimeError(f"ovcore/vis/palettes/{stem}.json: 'colours' must be a list of [R, G, B] in 0..255")
    colours = colours.astype(np.uint8)
    colours.flags.writeable = False  # cached and shared: callers get copies
    return colours


def datasets_with_palettes() -> list[str]:
    """Names of the registered datasets that have a standard palette."""
    return sorted(_DATASET_PALETTES)


def dataset_palette(dataset: str) -> np.ndarray:
    """The published palette of a dataset, verbatim (``(K, 3) uint8``, index = class id of its class list).

    VOC datasets get the colours of ids 1..20 (their class lists leave out background). Published palettes may
    repeat a colour (ADE20K gives road and skyscraper the same grey); :func:`palette_for` resolves that.

    Raises:
        ValueError: the dataset has no standard palette (the message lists those that do).
    """
    source = _DATASET_PALETTES.get(dataset)
    if source is None:
        known = ", ".join(datasets_with_palettes())
        raise ValueError(f"no standard palette for {dataset!r}; datasets with one: {known}")
    if source == "voc":
        return voc_colormap(21)[1:]
    return _palette_file(source).copy()


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """CIELAB (D65) of sRGB colours ``(..., 3)`` in 0..255, as float64 ``(..., 3)``."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    to_xyz = np.array([[0.4124564, 0.3575761, 0.1804375],
                       [0.2126729, 0.7151522, 0.0721750],
                       [0.0193339, 0.1191920, 0.9503041]])
    xyz = linear @ to_xyz.T / np.array([0.95047, 1.0, 1.08883])
    eps = (6 / 29) ** 3
    f = np.where(xyz > eps, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


def generate_distinct_palette(size: int = 256, seed: int = 0) -> np.ndarray:
    """Greedy farthest-point sampling in CIELAB over a 32-level RGB grid, lightness limited to 30..90 so every
    colour stays visible when blended over a photo and next to black outlines and white paper.

    This is how ``palettes/distinct_256.json`` was made (a test checks that it still reproduces).
    """
    levels = np.linspace(0, 255, 32).round().astype(np.int64)
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1).reshape(-1, 3)
    lab = srgb_to_lab(grid)
    keep = (lab[:, 0] >= 30) & (lab[:, 0] <= 90)
    grid, lab = grid[keep], lab[keep]
    chosen = [int(np.random.default_rng(seed).integers(len(grid)))]
    nearest = np.linalg.norm(lab - lab[chosen[0]], axis=1)
    for _ in range(size - 1):
        nxt = int(nearest.argmax())
        chosen.append(nxt)
        nearest = np.minimum(nearest, np.linalg.norm(lab - lab[nxt], axis=1))
    return grid[chosen].astype(np.uint8)


def distinct_palette() -> np.ndarray:
    """The fixed 256-colour palette per-name colours are drawn from (``(256, 3) uint8``, a copy)."""
    return _palette_file("distinct_256").copy()


def preferred_colour(name: str) -> tuple[int, int, int] | None:
    """The colour a normalised name asks for: :data:`NATURAL_COLOURS`, else its first colour word, else None."""
    if name in NATURAL_COLOURS:
        return NATURAL_COLOURS[name]
    return next((COLOUR_WORDS[w] for w in name.split() if w in COLOUR_WORDS), None)


def _name_hash(name: str) -> int:
    # hashlib, not hash(): Python salts str hashes per process, and colours must not change between runs.
    return int.from_bytes(hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest(), "big")


def _too_close(lab: np.ndarray, taken: list[np.ndarray]) -> bool:
    return bool(taken) and float(np.linalg.norm(np.stack(taken) - lab, axis=1).min()) < MIN_DELTA_E


def name_colours(class_names: Sequence[str], fixed: Mapping[int, Iterable[int]] | None = None) -> np.ndarray:
    """Per-name colours ``(T, 3) uint8`` for a vocabulary, distinct within it while the palette lasts.

    Args:
        class_names: the vocabulary (id -> name).
        fixed: colours already decided for some ids (a dataset palette); the other names avoid them.

    Names are visited in a fixed order (:data:`NATURAL_COLOURS` names, then names with a colour word, then the
    rest, each group sorted), and each takes its preferred colour (:func:`preferred_colour`) or its hashed palette
    entry, stepping to the next entry while that is closer than :data:`MIN_DELTA_E` to a colour
    already taken. Beyond 256 names colours must repeat: a name whose every entry is taken keeps its hashed one.
    """
    palette = _palette_file("distinct_256")
    palette_lab = srgb_to_lab(palette)
    out = np.zeros((len(class_names), 3), dtype=np.uint8)
    taken: list[np.ndarray] = []
    free = np.ones(len(palette), dtype=bool)

    def take(i: int, colour: np.ndarray) -> None:
        out[i] = colour
        lab = srgb_to_lab(colour)
        taken.append(lab)
        free[np.linalg.norm(palette_lab - lab, axis=1) < MIN_DELTA_E] = False

    for i, colour in (fixed or {}).items():
        take(i, np.asarray(list(colour), dtype=np.uint8))
    keys = [normalise_name(n) for n in class_names]
    todo = [i for i in range(len(keys)) if i not in (fixed or {})]
    preferred = [preferred_colour(k) for k in keys]
    todo.sort(key=lambda i: (keys[i] not in NATURAL_COLOURS, preferred[i] is None, keys[i], i))
    for i in todo:
        natural = preferred[i]
        if natural is not None and not _too_close(srgb_to_lab(np.array(natural)), taken):
            take(i, np.array(natural, dtype=np.uint8))
            continue
        start = _name_hash(keys[i]) % len(palette)
        order = (start + np.arange(len(palette))) % len(palette)
        candidates = order[free[order]]
        take(i, palette[candidates[0] if len(candidates) else start])
    return out


@functools.cache
def _dataset_keys() -> dict[tuple[str, ...], str]:
    from ovcore.data.catalog import get_class_names  # imports the dataset registry (and torch): only when needed

    keys: dict[tuple[str, ...], str] = {}
    for dataset in _DATASET_PALETTES:
        names = tuple(normalise_name(n) for n in get_class_names(dataset))
        keys.setdefault(names, dataset)
    return keys


def matching_dataset(class_names: Sequence[str]) -> str | None:
    """The registered dataset whose class list equals ``class_names`` after normalising, if it has a palette."""
    return _dataset_keys().get(tuple(normalise_name(n) for n in class_names))


def palette_for(class_names: Sequence[str]) -> np.ndarray:
    """Colours ``(T, 3) uint8`` for a vocabulary: its dataset's standard palette, or per-name colours.

    A published palette that repeats a colour keeps it for the first id; later ids with the same colour, and the
    ids a palette does not cover (PAS-20b's extra background names), get per-name colours distinct from the rest.

    Raises:
        ValueError: a class name is not a string.
    """
    names = tuple(class_names)
    if not all(isinstance(n, str) for n in names):
        raise ValueError("class names must be strings (a list of str)")
    return _palette_for(names).copy()


@functools.lru_cache(maxsize=64)
def _palette_for(names: tuple[str, ...]) -> np.ndarray:
    # Cached: one prediction colours its label PNG, overlay and legend with the same vocabulary.
    colours = _resolve_palette(names)
    colours.flags.writeable = False
    return colours


def _resolve_palette(names: tuple[str, ...]) -> np.ndarray:
    dataset = matching_dataset(names) if names else None
    if dataset is None:
        return name_colours(names)
    standard = dataset_palette(dataset)
    fixed: dict[int, tuple[int, ...]] = {}
    seen: set[tuple[int, ...]] = set()
    for i, colour in enumerate(standard[: len(names)]):
        rgb = tuple(int(v) for v in colour)
        if rgb not in seen:
            fixed[i] = rgb
            seen.add(rgb)
    return name_colours(names, fixed)

"""ovcore.vis: dataset palettes, per-name colours, legends, console summaries, overlays and label PNGs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ovcore.vis import (
    MIN_DELTA_E,
    NATURAL_COLOURS,
    dataset_palette,
    datasets_with_palettes,
    distinct_palette,
    legend_entries,
    name_colours,
    normalise_name,
    palette_for,
    render_overlay,
    save_label_png,
    summarise_classes,
    voc_colormap,
)
from ovcore.vis.colours import generate_distinct_palette, srgb_to_lab


def _min_delta_e(colours: np.ndarray) -> float:
    lab = srgb_to_lab(colours)
    dist = np.linalg.norm(lab[:, None] - lab[None], axis=-1)
    np.fill_diagonal(dist, np.inf)
    return float(dist.min())


# ------------------------------------------------------------------------------------------------ dataset palettes


def test_voc_colormap_is_the_standard_one() -> None:
    cmap = voc_colormap(256)
    expected = [(0, 0, 0), (128, 0, 0), (0, 128, 0), (128, 128, 0), (0, 0, 128), (128, 0, 128), (0, 128, 128),
                (128, 128, 128), (64, 0, 0), (192, 0, 0)]
    assert [tuple(c) for c in cmap[:10].tolist()] == expected
    assert tuple(cmap[15]) == (192, 128, 128)  # person
    assert tuple(cmap[255]) == (224, 224, 192)  # the "void" boundary colour of the VOC ground truth
    assert len({tuple(c) for c in cmap.tolist()}) == 256


def test_voc_vocabulary_gets_voc_colours_without_background() -> None:
    from ovcore.data import get_class_names

    colours = palette_for(get_class_names("voc20"))
    assert tuple(colours[0]) == (128, 0, 0) and tuple(colours[1]) == (0, 128, 0)  # aeroplane, bicycle
    assert tuple(colours[14]) == (192, 128, 128)  # person
    voc20b = palette_for(get_class_names("voc20b"))
    assert (voc20b[:20] == colours).all()
    assert _min_delta_e(voc20b) > 0  # the 39 extra background names get their own colours


def test_ade150_palette_is_the_standard_one() -> None:
    ade = dataset_palette("ade20k_150")
    assert ade.shape == (150, 3) and ade.dtype == np.uint8
    assert [tuple(c) for c in ade[:5].tolist()] == [(120, 120, 120), (180, 120, 120), (6, 230, 230), (80, 50, 50),
                                                     (4, 200, 3)]
    assert tuple(ade[149]) == (92, 0, 255)


def test_context59_palette_is_ade_shifted_by_one() -> None:
    assert (dataset_palette("pascal_context_59") == dataset_palette("ade20k_150")[1:60]).all()


def test_coco_stuff_palette_starts_with_the_standard_entries() -> None:
    coco = dataset_palette("coco_stuff_171")
    assert coco.shape == (171, 3)
    assert [tuple(c) for c in coco[:3].tolist()] == [(0, 192, 64), (0, 192, 64), (0, 64, 96)]


def test_every_palette_covers_its_dataset_and_is_matched() -> None:
    from ovcore.data import dataset_info, get_class_names

    for dataset in datasets_with_palettes():
        names = get_class_names(dataset)
        standard = dataset_palette(dataset)
        info = dataset_info(dataset)
        # PAS-20b: the 20 VOC objects; its background names (ids >= 20) get per-name colours.
        assert len(standard) == (info.merge_predictions_from or min(len(names), info.num_classes)), dataset
        colours = palette_for(names)
        assert colours.shape == (len(names), 3)
        assert len({tuple(c) for c in colours.tolist()}) == len(names), dataset  # repeats are resolved
        kept = [i for i in range(len(standard)) if tuple(standard[i]) not in map(tuple, standard[:i].tolist())]
        assert (colours[kept] == standard[kept]).all(), dataset


def test_dataset_match_ignores_case_spaces_and_synonyms() -> None:
    from ovcore.data import get_class_names

    names = get_class_names("ade20k_150")
    assert names[7] == "bed "  # the published spelling, with its trailing space
    edited = [n.strip().upper() for n in names]
    edited[12] = "person, individual"
    assert (palette_for(edited) == dataset_palette("ade20k_150")[:150]).sum() >= 149 * 3
    assert normalise_name("  Person,  individual ") == "person"


def test_unknown_dataset_palette_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="ade20k_150"):
        dataset_palette("ade20k_847")
    with pytest.raises(ValueError, match="strings"):
        palette_for(["sky", 3])  # type: ignore[list-item]


def test_palette_for_returns_a_fresh_array() -> None:
    first = palette_for(["sky", "grass"])
    first[:] = 0  # the cached palette must not change
    assert tuple(palette_for(["sky", "grass"])[0]) == NATURAL_COLOURS["sky"]


# ------------------------------------------------------------------------------------------------ per-name colours


def test_distinct_palette_is_reproducible_and_spread() -> None:
    stored = distinct_palette()
    assert stored.shape == (256, 3)
    assert (stored == generate_distinct_palette(256, seed=0)).all()
    assert _min_delta_e(stored) > MIN_DELTA_E


def test_a_name_keeps_its_colour_across_vocabularies() -> None:
    small = name_colours(["zebra crossing", "lamp post"])
    rng = np.random.default_rng(1)
    words = [f"thing {i}" for i in rng.permutation(40)]
    large = name_colours(words[:20] + ["zebra crossing"] + words[20:] + ["Lamp Post"])
    assert tuple(large[20]) == tuple(small[0]) and tuple(large[-1]) == tuple(small[1])
    # The same set of names in another order gets the same colours.
    shuffled = list(reversed(words))
    by_name = dict(zip(words, map(tuple, name_colours(words).tolist()), strict=True))
    assert dict(zip(shuffled, map(tuple, name_colours(shuffled).tolist()), strict=True)) == by_name


def test_per_name_colours_do_not_depend_on_the_process() -> None:
    # Python's str hash is salted per process; the colour must come from a stable hash.
    code = "from ovcore.vis import name_colours; print(name_colours(['zebra crossing']).tolist())"
    outputs = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       env={"PYTHONHASHSEED": seed, "PATH": ""}).stdout
        for seed in ("1", "2")
    }
    assert len(outputs) == 1


def test_a_150_name_vocabulary_gets_distinguishable_colours() -> None:
    rng = np.random.default_rng(0)
    names = ["".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), 7)) for _ in range(150)]
    assert _min_delta_e(name_colours(names)) >= MIN_DELTA_E
    assert _min_delta_e(name_colours([*names[:100], *NATURAL_COLOURS])) >= MIN_DELTA_E


def test_natural_names_and_colour_words() -> None:
    assert _min_delta_e(np.array(list(NATURAL_COLOURS.values()), dtype=np.uint8)) >= MIN_DELTA_E
    colours = palette_for(["Sky", "grass", "red circle", "striped texture"])
    assert tuple(colours[0]) == NATURAL_COLOURS["sky"] and tuple(colours[1]) == NATURAL_COLOURS["grass"]
    assert colours[2][0] > 200 and colours[2][1] < 60  # red


def test_vocabularies_larger_than_the_palette_still_get_colours() -> None:
    colours = name_colours([f"class {i}" for i in range(600)])
    assert colours.shape == (600, 3) and len({tuple(c) for c in colours.tolist()}) >= 256


def test_importing_vis_does_not_import_torch() -> None:
    code = "import sys, ovcore.vis; ovcore.vis.name_colours(['a']); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# ------------------------------------------------------------------------------------------ legend and summaries

NAMES = ["sky", "grass", "water", "sand, beach"]


def _labels() -> np.ndarray:
    labels = np.zeros((10, 10), dtype=np.int64)  # sky 50
    labels[5:] = 3  # sand 30 after the next lines
    labels[5:, :2] = 255  # 10 ignored
    labels[8:, 2:] = 1  # grass 16
    labels[9, 9] = 3
    return labels


def test_legend_lists_present_classes_largest_first_with_areas() -> None:
    entries = legend_entries(_labels(), NAMES, ignore_index=255)
    assert [e.name for e in entries] == ["sky", "sand", "grass"]  # water is absent; first synonym only
    assert [e.class_id for e in entries] == [0, 3, 1]
    assert [round(e.fraction, 4) for e in entries] == [round(50 / 90, 4), round(25 / 90, 4), round(15 / 90, 4)]
    assert sum(e.fraction for e in entries) == pytest.approx(1.0)
    assert entries[0].colour == NATURAL_COLOURS["sky"]
    name, colour, fraction, class_id = entries[1]
    assert (name, class_id) == ("sand", 3) and colour == tuple(palette_for(NAMES)[3])


def test_legend_rejects_ids_outside_the_vocabulary() -> None:
    with pytest.raises(ValueError, match="0..3"):
        legend_entries(_labels(), NAMES)  # 255 is not ignored here


def test_console_summary_never_cuts_silently() -> None:
    rng = np.random.default_rng(0)
    names = [f"class {i}" for i in range(20)]
    entries = legend_entries(rng.integers(0, 20, (40, 40)), names)
    full = summarise_classes(entries)
    assert all(e.name in full for e in entries) and "more" not in full
    cut = summarise_classes(entries, limit=6)
    assert cut.endswith("... and 14 more") and cut.count("%") == 6
    assert summarise_classes(entries, limit=0) == "20 classes"
    assert summarise_classes([]) == "(no classes)"
    with pytest.raises(ValueError, match="limit"):
        summarise_classes(entries, limit=-1)


# ------------------------------------------------------------------------------------------ overlays and label PNGs


def test_render_overlay_size_and_colours() -> None:
    image = np.full((10, 10, 3), 100, dtype=np.uint8)
    labels = _labels()
    plain = render_overlay(image, labels, NAMES, ignore_index=255, legend=False, min_side=1, alpha=1.0)
    assert plain.size == (10 + 10 + 10, 10)  # image, gap, overlay
    overlay = np.asarray(plain)[:, 20:]
    assert tuple(overlay[2, 2]) == NATURAL_COLOURS["sky"]  # alpha 1: the class colour itself
    assert tuple(overlay[6, 0]) == (100, 100, 100)  # ignored pixels stay the image
    big = render_overlay(image, labels, NAMES, ignore_index=255, min_side=256, title="prediction")
    assert big.mode == "RGB" and big.height >= 260 and big.width > 2 * 260  # enlarged x26, plus the legend


def test_render_overlay_legend_grows_columns_not_cuts() -> None:
    names = [f"class {i}" for i in range(120)]
    labels = np.arange(120).repeat(2)[None].repeat(64, 0)[:, :240]
    one_row = render_overlay(np.zeros((64, 240, 3), np.uint8), labels, names, min_side=64, side_by_side=False)
    assert one_row.width > 240 + 4 * 100  # several legend columns


def test_render_overlay_rejects_bad_input() -> None:
    image = np.zeros((4, 4, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="differ in size"):
        render_overlay(image, np.zeros((4, 5), dtype=np.int64), NAMES)
    with pytest.raises(ValueError, match="alpha"):
        render_overlay(image, np.zeros((4, 4), dtype=np.int64), NAMES, alpha=1.5)


def test_save_label_png_uses_the_overlay_colours(tmp_path: Path) -> None:
    labels = _labels()
    path = save_label_png(tmp_path / "out" / "l.png", labels, NAMES, ignore_index=255)
    with Image.open(path) as im:
        assert im.mode == "P"
        assert np.array_equal(np.asarray(im), labels.astype(np.uint8))
        table = np.array(im.getpalette()[: 3 * len(NAMES)], dtype=np.uint8).reshape(-1, 3)
    assert (table == palette_for(NAMES)).all()


def test_save_label_png_beyond_256_classes_is_16_bit(tmp_path: Path) -> None:
    names = [f"class {i}" for i in range(300)]
    labels = np.array([[0, 299], [256, 1]])
    with Image.open(save_label_png(tmp_path / "l.png", labels, names)) as im:
        assert np.array_equal(np.asarray(im).astype(np.int64), labels)
    with pytest.raises(ValueError, match="0..299"):
        save_label_png(tmp_path / "bad.png", labels + 1, names)

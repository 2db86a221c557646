"""Colours people recognise, overlays with a legend, and palette label PNGs (numpy + PIL; no torch at import).

* :func:`palette_for` -- colours of a vocabulary: the dataset's standard palette when the vocabulary is a
  registered dataset's class list (ADE20K-150, COCO-Stuff-171, PASCAL Context-59, PASCAL VOC), otherwise a colour
  fixed per class name (:func:`name_colours`).
* :func:`render_overlay` -- image, blended label map with outlines, and a legend of the classes present.
* :func:`legend_entries` / :func:`summarise_classes` -- the classes present, largest first, for code and consoles.
* :func:`save_label_png` -- the label map as a palette PNG in the same colours.
"""

from ovcore.vis.colours import (
    COLOUR_WORDS,
    MIN_DELTA_E,
    NATURAL_COLOURS,
    dataset_palette,
    datasets_with_palettes,
    distinct_palette,
    matching_dataset,
    name_colours,
    normalise_name,
    palette_for,
    voc_colormap,
)
from ovcore.vis.overlay import (
    LegendEntry,
    display_name,
    legend_entries,
    render_overlay,
    save_label_png,
    summarise_classes,
)

__all__ = [
    "palette_for",
    "name_colours",
    "dataset_palette",
    "datasets_with_palettes",
    "distinct_palette",
    "matching_dataset",
    "normalise_name",
    "voc_colormap",
    "NATURAL_COLOURS",
    "COLOUR_WORDS",
    "MIN_DELTA_E",
    "LegendEntry",
    "legend_entries",
    "summarise_classes",
    "render_overlay",
    "save_label_png",
    "display_name",
]

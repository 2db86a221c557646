"""The ``predict`` command of every method: images and a vocabulary in; label maps, overlays and JSON out.

    sed-predict photos/ --vocabulary "car, road, tree|shrub" --checkpoint ckpt.pt --output-dir runs/pred
    maskclip-predict photos/ --vocabulary ade20k_150 --batch-size 4

For every image under INPUTS (folders searched recursively) it writes ``<name>_labels.png`` (class ids: 8-bit palette
PNG, 16-bit PNG above 256 classes) and ``<name>_overlay.png`` (colours, boundaries and a legend of the classes
present), where ``<name>`` is the path below the input folder with ``/`` replaced by ``__``; plus
``vocabulary.json`` (id -> name) and ``predictions.json`` (per image: files, classes present, the method's
statistics, milliseconds). Opt-in outputs for other tools (``ovcore.cmd.outputs``): ``--save-probs npz|png``
(class probabilities per image) and ``--rle-json PATH`` (COCO-style RLE of every label map, one file). Everything
is written batch by batch and only small per-image records are kept, so memory stays flat over any number of
images. Inputs, vocabulary and output folders are checked before the model is built.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import tyro

from ovcore.cmd.errors import check_min, check_output_dir, check_range
from ovcore.cmd.log import say
from ovcore.cmd.model import LoadedModel, Loader, as_prediction, load_with_method, method_name
from ovcore.cmd.options import ModelOptions, OutputOptions

__all__ = ["PredictOptions", "predict_images", "run_predict"]


@dataclass(kw_only=True)
class PredictOptions(ModelOptions, OutputOptions):
    """Segment images with a free vocabulary: label-map PNGs, overlays with a legend, predictions.json."""

    inputs: Annotated[tuple[str, ...], tyro.conf.Positional, tyro.conf.arg(metavar="INPUTS")]
    """Image files and/or folders (searched recursively for .jpg .jpeg .png .bmp .webp .tif .tiff .gif)."""

    vocabulary: str | None = None
    """The classes: a comma list ('cat, dog, grass|lawn'; '|' joins synonyms of one class), a file (.txt: one class
    per line; .json: an array of names), or a dataset's class list by name (ade20k_150, a150, coco_stuff_171);
    default: the model's own vocabulary."""

    batch_size: int = 1
    """Images per predict call (consecutive images of the same size are batched)."""

    alpha: float = 0.6
    """Opacity of the class colours in the overlays."""

    overlay_min_side: int = 256
    """Overlays of images whose short side is smaller are enlarged (nearest) by an integer factor for legibility."""

    overlays: bool = True
    """Write <name>_overlay.png next to each label map."""

    progress: bool = True
    """Show a progress bar."""

    save_probs: Literal["none", "npz", "png"] = "none"
    """Also write the class probabilities of every image: npz = <name>_probs.npz (float16 'probs' (T, H, W) and
    'class_names'); png = a folder <name>_probs/ with one 8-bit PNG per class (probability x 255), named
    <index>_<class>.png. Large: T x H x W values per image."""

    rle_json: Annotated[str | None, tyro.conf.arg(metavar="PATH")] = None
    """Also write every label map as COCO-style RLE into this one JSON file (relative to the current folder): a
    record per image and class present with 'segmentation' {'size': [H, W], 'counts': compressed RLE string, as
    pycocotools writes it}, 'category_id', 'category_name' and 'area', plus a 'categories' list."""

    def validate(self) -> None:
        """Check the numeric options; the messages name the flags."""
        check_min("--batch-size", self.batch_size, 1)
        check_range("--alpha", self.alpha, 0.0, 1.0)
        check_min("--overlay-min-side", self.overlay_min_side, 0)


def _same_size_runs(images: list[Any]) -> list[list[int]]:
    """Indices of consecutive images of one size (a batch tensor needs one size)."""
    runs: list[list[int]] = []
    for i, image in enumerate(images):
        if runs and images[runs[-1][0]].shape == image.shape:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


def _record(path: Path, stem: str, labels: Any, names: list[str], stats: dict[str, Any], ms: float,
            files: dict[str, str]) -> dict[str, Any]:
    from ovcore.vis import legend_entries, summarise_classes

    entries = legend_entries(labels, names)
    return {"image": str(path), "name": stem, **files, "size": list(labels.shape),
            "classes_present": [names[e.class_id] for e in entries],
            "class_fractions": [round(e.fraction, 6) for e in entries], "summary": summarise_classes(entries, 8),
            "stats": stats, "ms": ms}


def predict_images(loaded: LoadedModel, paths: Sequence[Path], stems: Sequence[str], names: Sequence[str],
                   output_dir: str | Path, *, device: Any = "cpu", batch_size: int = 1, alpha: float = 0.6,
                   overlay_min_side: int = 256, overlays: bool = True, progress: bool = False,
                   title: str | None = "prediction", save_probs: str = "none",
                   rle: Any = None) -> list[dict[str, Any]]:
    """Predict every image and write its label map (and overlay); the code path of every ``predict`` command.

    Args:
        save_probs: ``"none"``, ``"npz"`` or ``"png"`` (``ovcore.cmd.outputs.save_probs``).
        rle: An ``ovcore.cmd.outputs.RleJsonWriter`` receiving every label map, or None.

    Returns:
        One record per image: input, output files, size, classes present (largest first), statistics, ms. Only
        these small records outlive their batch (images, probabilities and label maps do not).
    """
    import torch

    from ovcore.cmd.images import batched
    from ovcore.cmd.images import progress as with_progress
    from ovcore.cmd.outputs import save_probs as write_probs
    from ovcore.data.io import read_image
    from ovcore.vis import render_overlay, save_label_png

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = list(names)
    loaded.use_vocabulary(names)
    items = list(zip(paths, stems, strict=True))
    records: list[dict[str, Any]] = []
    bar = with_progress(list(batched(items, batch_size)), desc="predict", enabled=progress)
    for batch in bar:
        images = [read_image(p) for p, _ in batch]
        for run in _same_size_runs(images):
            tensor = torch.stack([images[i] for i in run]).to(device)
            t0 = time.perf_counter()
            pred = as_prediction(loaded.model.predict(tensor, **loaded.predict_options), names)
            labels = pred.labels.cpu().numpy()
            ms = 1000.0 * (time.perf_counter() - t0) / len(run)
            probs = pred.probs.float().cpu().numpy() if save_probs != "none" else None
            for j, i in enumerate(run):
                path, stem = batch[i]
                files = {"labels": str(save_label_png(out / f"{stem}_labels.png", labels[j], names))}
                if probs is not None:
                    files["probs"] = write_probs(out, stem, probs[j], names, save_probs)
                if rle is not None:
                    rle.add(stem, labels[j])
                if overlays:
                    rgb = images[i].permute(1, 2, 0).numpy()
                    overlay = render_overlay(rgb, labels[j], names, alpha=alpha, min_side=overlay_min_side,
                                             title=title)
                    overlay.save(out / f"{stem}_overlay.png")
                    files["overlay"] = str(out / f"{stem}_overlay.png")
                stats = pred.stats[j] if j < len(pred.stats) else {}
                records.append(_record(path, stem, labels[j], names, stats, ms, files))
    return records


def _rle_path(options: PredictOptions) -> Path | None:
    """``--rle-json`` checked before the model is built: not a folder, and its folder writable."""
    if options.rle_json is None:
        return None
    path = Path(options.rle_json).expanduser()
    if path.is_dir():
        raise ValueError(f"--rle-json {path} is a folder; give a file path such as {path / 'labels_rle.json'}")
    check_output_dir(path.parent, "--rle-json")
    return path


def _vocabulary(options: PredictOptions) -> list[str] | None:
    from ovcore.cmd.vocabulary import resolve_vocabulary

    return None if options.vocabulary is None else resolve_vocabulary(options.vocabulary)


def run_predict(method: Any, options: PredictOptions, *, load: Loader | None = None,
                prog: str | None = None) -> list[dict[str, Any]]:
    """Body of a ``<method>-predict`` command.

    Args:
        method: The ``MethodSpec`` (or its name when ``load`` is given).
        options: The parsed options (a method's subclass may add its own flags, read by ``load``).
        load: ``(options, device) -> LoadedModel``; default ``MethodSpec.create(preset, checkpoint=...)``.
        prog: The command's name for its output lines (default ``<method>-predict``).

    Returns:
        The per-image records written to ``predictions.json``.
    """
    from ovcore.cmd.images import collect_images, output_stems
    from ovcore.files import write_json
    from ovcore.train.distributed import resolve_device

    name = method_name(method)
    prog = prog or f"{name}-predict"
    options.validate()
    names = _vocabulary(options)  # bad input is reported before anything heavy is built
    paths = collect_images(options.inputs)
    out = check_output_dir(options.output_dir or f"runs/{prog.replace('-', '_')}", "--output-dir")
    rle_path = _rle_path(options)
    device = resolve_device(options.device)
    loaded = load(options, device) if load is not None else load_with_method(method, options, device)
    if names is None:
        names = list(loaded.model.class_names)
        if not names:
            raise ValueError("--vocabulary: the model has no vocabulary of its own; give --vocabulary")
    say(f"{prog}: {len(paths)} image(s), {len(names)} classes, {loaded.weights}")
    with contextlib.ExitStack() as stack:
        rle = None
        if rle_path is not None:
            from ovcore.cmd.outputs import RleJsonWriter

            rle = stack.enter_context(RleJsonWriter(rle_path, names, {"method": name, "weights": loaded.weights}))
        records = predict_images(
            loaded, paths, output_stems(paths, options.inputs), names, out, device=device,
            batch_size=options.batch_size, alpha=options.alpha, overlay_min_side=options.overlay_min_side,
            overlays=options.overlays, progress=options.progress, save_probs=options.save_probs, rle=rle,
        )
    write_json(out / "vocabulary.json", {"classes": names, "label_png": "pixel value = index into classes"})
    write_json(out / "predictions.json", {"method": name, "weights": loaded.weights, **loaded.info,
                                          "num_classes": len(names), "images": records})
    for r in records:
        say(f"  {r['image']} ({r['ms']:.0f} ms): {r['summary']}")
    say(f"label maps, overlays, vocabulary.json and predictions.json are in {out.resolve()}")
    if rle_path is not None:
        say(f"COCO-style RLE of the label maps: {rle_path.resolve()}")
    return records

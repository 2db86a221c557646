"""``sed-predict``: images plus a free vocabulary -> label-map PNGs and overlay PNGs with a legend.

    sed-predict photos/ street.jpg --classes "car,road,tree,sky,person|pedestrian" \\
        --checkpoint runs/sed_b/checkpoints/ckpt_0080000.pt --output-dir runs/pred
    sed-predict photos/ --classes-file vocab.json --official-checkpoint sed_model_base.pth --topk 8

Writes ``<stem>_labels.png`` (class ids: 8-bit palette PNG, 16-bit PNG above 256 classes), ``<stem>_overlay.png``
(colours, boundaries and a legend of the classes present), ``vocabulary.json`` (id -> name) and
``predictions.json`` (files, classes present, CER statistics, ms per image) into the output directory.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import torch
import tyro

from ovcore.command import run_command
from sed.cli._common import (
    IMAGE_SUFFIXES,
    ModelOptions,
    load_model_from,
    resolve_vocabulary,
    say,
    setup_logging,
    write_json,
)
from sed.cli.visualize import read_rgb, render_overlay, save_label_map

__all__ = ["PredictConfig", "collect_images", "predict_files", "main"]


@dataclass
class PredictConfig(ModelOptions):
    """Segment images with a free vocabulary: label-map PNGs and overlays with a legend."""

    inputs: Annotated[tuple[str, ...], tyro.conf.Positional, tyro.conf.arg(metavar="INPUTS")]
    """Image files and/or folders (every image file directly inside a folder: .jpg .jpeg .png .bmp .webp .tif .gif)."""

    classes: str | None = None
    """The vocabulary as a comma-separated list, e.g. 'cat,dog,grass'; '|' joins synonyms of one class
    ('grass|lawn' becomes SED's 'grass, lawn')."""

    classes_file: str | None = None
    """The vocabulary from a file: a JSON array of names (synonyms inside an entry separated by ', ', or an entry
    that is a list of synonyms) or a text file with one class per line (blank lines and # comments skipped)."""

    dataset_classes: str | None = None
    """The vocabulary of a registered ovcore.data dataset, e.g. ade20k_150 or coco_stuff_171."""

    output_dir: str = "runs/sed_predict"
    """Folder for the label maps, overlays, vocabulary.json and predictions.json."""

    device: str = "auto"
    """'auto' (CUDA when available), 'cpu', 'cuda' or 'cuda:N'."""

    alpha: float = 0.6
    """Opacity of the class colours in the overlays."""

    overlay_min_side: int = 256
    """Overlays of images whose short side is smaller are enlarged (nearest) by an integer factor for legibility."""

    def validate(self) -> None:
        """Check the numeric options before the model is built; the messages name the flags."""
        from ovcore.command import check_min, check_range

        super().validate()
        check_range("--alpha", self.alpha, 0.0, 1.0)
        check_min("--overlay-min-side", self.overlay_min_side, 0)


def collect_images(inputs: Sequence[str | Path]) -> list[Path]:
    """Expand files and folders into a sorted list of image files.

    Raises:
        ValueError: a path that does not exist, a file that is not an image, or no image at all.
    """
    if not inputs:
        raise ValueError("INPUTS: give at least one image file or folder")
    files: list[Path] = []
    for raw in inputs:
        path = Path(raw).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise ValueError(f"INPUTS: folder {str(path)!r} holds no image files ({' '.join(IMAGE_SUFFIXES)})")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise ValueError(f"INPUTS: image not found: {str(path)!r}")
    return files


def _unique_stems(paths: Sequence[Path]) -> list[str]:
    seen: dict[str, int] = {}
    stems = []
    for p in paths:
        n = seen.get(p.stem, 0)
        seen[p.stem] = n + 1
        stems.append(p.stem if n == 0 else f"{p.stem}_{n}")
    return stems


def predict_files(
    model: Any,
    paths: Sequence[Path],
    class_names: Sequence[str],
    output_dir: str | Path,
    *,
    topk: int | None = None,
    device: torch.device | str = "cpu",
    alpha: float = 0.6,
    overlay_min_side: int = 256,
    title: str | None = "prediction",
) -> list[dict[str, Any]]:
    """Predict every image and write its label map and overlay (the code path of ``sed-predict`` and ``sed-demo``).

    Args:
        model: a SED model (eval mode).
        paths: image files (read with PIL, RGB).
        class_names: the vocabulary (``", "`` separates synonyms).
        output_dir: where ``<stem>_labels.png``, ``<stem>_overlay.png``, ``vocabulary.json`` and
            ``predictions.json`` go.
        topk: CER k (None: plain decoder).
        device: device of the input tensors.
        alpha / overlay_min_side / title: overlay options (see :func:`render_overlay`).

    Returns:
        One record per image: input, outputs, classes present (largest first), CER statistics, milliseconds.
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = list(class_names)
    model.set_vocabulary(names)
    write_json(out / "vocabulary.json", {"classes": names, "label_png": "pixel value = index into classes"})
    records = []
    for path, stem in zip(paths, _unique_stems(paths), strict=True):
        image = read_rgb(path)
        tensor = torch.from_numpy(image).permute(2, 0, 1)[None].contiguous().to(device)
        t0 = time.perf_counter()
        result = model.predict(tensor, k=topk)
        labels = result["labels"][0].cpu().numpy()
        ms = 1000.0 * (time.perf_counter() - t0)
        label_path = save_label_map(out / f"{stem}_labels.png", labels, len(names))
        overlay_path = out / f"{stem}_overlay.png"
        render_overlay(image, labels, names, alpha=alpha, min_side=overlay_min_side, title=title).save(overlay_path)
        ids, counts = torch.from_numpy(labels).unique(return_counts=True)
        order = counts.argsort(descending=True)
        records.append({
            "image": str(path),
            "labels": str(label_path),
            "overlay": str(overlay_path),
            "size": list(labels.shape),
            "classes_present": [names[int(ids[i])] for i in order],
            "cer_kept": result["stats"]["kept"][0],
            "ms": ms,
        })
    write_json(out / "predictions.json", {"cer_topk": topk, "num_classes": len(names), "images": records})
    return records


def run(cfg: PredictConfig) -> list[dict[str, Any]]:
    """Body of ``sed-predict`` (inputs are checked before the model is built)."""
    from ovcore.command import check_output_dir
    from ovcore.train import resolve_device

    cfg.validate()
    names = resolve_vocabulary(cfg.classes, cfg.classes_file, cfg.dataset_classes)
    paths = collect_images(cfg.inputs)
    check_output_dir(cfg.output_dir, "--output-dir")
    device = resolve_device(cfg.device)
    model, what, topk = load_model_from(cfg, device)
    cer = f"top-{topk}" if topk else "off"
    say(f"sed-predict: {len(paths)} image(s), {len(names)} classes, {what}, CER {cer}")
    records = predict_files(
        model, paths, names, cfg.output_dir, topk=topk, device=device, alpha=cfg.alpha,
        overlay_min_side=cfg.overlay_min_side,
    )
    for r in records:
        say(f"  {r['image']}: {', '.join(n.split(', ')[0] for n in r['classes_present'][:6])} ({r['ms']:.0f} ms)")
    say(f"label maps, overlays, vocabulary.json and predictions.json are in {Path(cfg.output_dir).resolve()}")
    return records


def main(argv: Sequence[str] | None = None) -> int:
    """Console script ``sed-predict``."""
    setup_logging()
    return run_command("sed-predict", lambda: run(tyro.cli(PredictConfig, args=argv, prog="sed-predict")))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

"""The ``ovcore`` command line.

    ovcore prepare coco_stuff|ade20k_150|ade20k_847|pascal_context_59|pascal_context_459|voc [--root R] ...
    ovcore demo-data [--root R] [--num-train N] [--num-val N] [--size S] [--seed S]
    ovcore datasets [--root R]            # registered datasets and whether their splits are prepared

Sub-commands are dataclasses with a ``run()`` method; :data:`COMMANDS` maps names to them, so other parts of
ovcore can add their own.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import tyro

__all__ = ["main", "COMMANDS"]

Split2 = Literal["train", "val"]


def _write(line: str) -> None:
    sys.stdout.write(line + "\n")


@dataclasses.dataclass
class _PrepareBase:
    root: Path | None = None
    """Dataset root holding the raw download (default: $DETECTRON2_DATASETS or ./datasets)."""
    overwrite: bool = False
    """Rewrite outputs that already exist (by default they are skipped)."""
    workers: int = 0
    """Worker processes (0: convert in this process)."""

    def _kwargs(self) -> dict[str, Any]:
        from ovcore.cmd.errors import check_min, check_output_dir

        check_min("--workers", self.workers, 0)
        if self.root is not None and Path(self.root).is_dir():  # a missing root is reported by the preparer
            check_output_dir(self.root, "--root")
        return {"root": self.root, "overwrite": self.overwrite, "workers": self.workers}

    def _finish(self, report: Any) -> None:
        _write(str(report))


@dataclasses.dataclass
class PrepareCocoStuff(_PrepareBase):
    """COCO-Stuff 164k: coco-stuff/annotations/{train2017,val2017} -> annotations_detectron2 (171 ids)."""

    splits: tuple[Split2, ...] = ("train", "val")
    """Splits to convert."""

    def run(self) -> None:
        from ovcore.data.prepare import prepare_coco_stuff

        self._finish(prepare_coco_stuff(splits=self.splits, **self._kwargs()))


@dataclasses.dataclass
class PrepareADE150(_PrepareBase):
    """ADE20K-150: ADEChallengeData2016/annotations -> annotations_detectron2 (label - 1, 0 -> 255)."""

    splits: tuple[Split2, ...] = ("train", "val")
    """Splits to convert."""

    def run(self) -> None:
        from ovcore.data.prepare import prepare_ade20k_150

        self._finish(prepare_ade20k_150(splits=self.splits, **self._kwargs()))


@dataclasses.dataclass
class PrepareADE847(_PrepareBase):
    """ADE20K-847: ADE20K_2021_17_01 (index_ade20k.pkl, *_seg.png) -> images/annotations_detectron2 (uint16 TIFF)."""

    splits: tuple[Split2, ...] = ("val",)
    """Splits to convert (the official script converts validation only)."""

    def run(self) -> None:
        from ovcore.data.prepare import prepare_ade20k_847

        self._finish(prepare_ade20k_847(splits=self.splits, **self._kwargs()))


@dataclasses.dataclass
class PreparePC59(_PrepareBase):
    """PASCAL Context 59: VOC2010/trainval_merged.json -> annotations_detectron2/pc59_<split>."""

    splits: tuple[Split2, ...] = ("val",)
    """Splits to convert (train is needed for zero-shot training only)."""

    def run(self) -> None:
        from ovcore.data.prepare import prepare_pascal_context_59

        self._finish(prepare_pascal_context_59(splits=self.splits, **self._kwargs()))


@dataclasses.dataclass
class PreparePC459(_PrepareBase):
    """PASCAL Context 459: VOC2010/trainval/*.mat -> annotations_detectron2/pc459_val (uint16 TIFF)."""

    def run(self) -> None:
        from ovcore.data.prepare import prepare_pascal_context_459

        self._finish(prepare_pascal_context_459(**self._kwargs()))


@dataclasses.dataclass
class PrepareVOC(_PrepareBase):
    """PASCAL VOC 2012: SegmentationClass(Aug) -> annotations_detectron2{,_bg}/<split> (PAS-20, PAS-20b, voc_zs)."""

    splits: tuple[Split2, ...] = ("val",)
    """Splits to convert (train: the training set of --train-set, for zero-shot training)."""

    train_set: Literal["aug", "train"] = "aug"
    """Training set of --splits train: 'aug' = train.txt + aug.txt, the 10,582 images every zero-shot paper trains
    on (needs SegmentationClassAug/ and ImageSets/Segmentation/aug.txt; an error without them); 'train' = only the
    1,464 images of train.txt (not the papers' training set)."""

    def run(self) -> None:
        from ovcore.data.prepare import prepare_voc

        self._finish(prepare_voc(splits=self.splits, train_set=self.train_set, **self._kwargs()))


PrepareCommand = (
    Annotated[PrepareCocoStuff, tyro.conf.subcommand("coco_stuff")]
    | Annotated[PrepareADE150, tyro.conf.subcommand("ade20k_150")]
    | Annotated[PrepareADE847, tyro.conf.subcommand("ade20k_847")]
    | Annotated[PreparePC59, tyro.conf.subcommand("pascal_context_59")]
    | Annotated[PreparePC459, tyro.conf.subcommand("pascal_context_459")]
    | Annotated[PrepareVOC, tyro.conf.subcommand("voc")]
)


def prepare(command: tyro.conf.OmitArgPrefixes[PrepareCommand]) -> None:
    """Convert an official raw download into the prepared layout read by ovcore.data.build_dataset."""
    command.run()


@dataclasses.dataclass
class DemoData:
    """Write the procedural demo dataset (read back with build_dataset("demo", root))."""

    root: Path | None = None
    """Dataset root; files go to <root>/demo (default root: $DETECTRON2_DATASETS or ./datasets)."""
    num_train: int = 64
    """Training scenes."""
    num_val: int = 16
    """Validation scenes."""
    size: int = 128
    """Scene height and width in pixels."""
    seed: int = 0
    """Dataset seed."""
    overwrite: bool = False
    """Replace an existing demo dataset."""

    def run(self) -> None:
        from ovcore.cmd.errors import check_min, check_output_dir
        from ovcore.data import default_root, write_demo_dataset

        check_min("--num-train", self.num_train, 1)
        check_min("--num-val", self.num_val, 1)
        check_min("--size", self.size, 16)
        check_output_dir(self.root if self.root is not None else default_root(), "--root")
        out = write_demo_dataset(  # creates the root and the demo folder as needed
            self.root,
            num_train=self.num_train,
            num_val=self.num_val,
            size=self.size,
            seed=self.seed,
            overwrite=self.overwrite,
            progress=True,
        )
        _write(f"demo dataset: {self.num_train} train + {self.num_val} val scenes in {out}")


@dataclasses.dataclass
class Datasets:
    """List the registered datasets and which of their splits are prepared under the root."""

    root: Path | None = None
    """Dataset root (default: $DETECTRON2_DATASETS or ./datasets)."""

    def run(self) -> None:
        from ovcore.data import dataset_info, default_root, list_datasets

        root = self.root if self.root is not None else default_root()
        _write(f"dataset root: {root}")
        for name in list_datasets():
            info = dataset_info(name)
            states = []
            for split, layout in sorted(info.splits.items()):
                ready = (root / layout.label_dir).is_dir() and (root / layout.image_dir).is_dir()
                states.append(f"{split}:{'ready' if ready else 'missing'}")
            _write(
                f"{name:20s} classes={info.num_classes:<4d} ignore={info.ignore_index:<6d} {' '.join(states):28s} "
                f"{info.description}"
            )
            if not all(s.endswith("ready") for s in states) and info.prepare:
                _write(f"{'':20s} prepare with: {info.prepare_command(root=root)}")


COMMANDS: dict[str, Any] = {
    "prepare": prepare,
    "demo-data": DemoData,
    "datasets": Datasets,
}


def _run(args: list[str]) -> None:
    result = tyro.extras.subcommand_cli_from_dict(COMMANDS, prog="ovcore", args=args)
    if result is not None and hasattr(result, "run"):
        result.run()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ovcore`` console script; errors follow :mod:`ovcore.cmd.errors` (one line, exit 2)."""
    from ovcore.cmd.errors import run_command

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = list(sys.argv[1:] if argv is None else argv)
    return run_command("ovcore", lambda: _run(args))


if __name__ == "__main__":
    raise SystemExit(main())

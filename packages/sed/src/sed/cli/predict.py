"""``sed-predict``: images plus a free vocabulary -> label-map PNGs and overlay PNGs with a legend.

    sed-predict photos/ street.jpg --vocabulary "car, road, tree, sky, person|pedestrian" \\
        --checkpoint runs/sed_b/checkpoints/ckpt_0080000.pt --output-dir runs/pred
    sed-predict photos/ --vocabulary ade20k_150 --official-checkpoint sed_model_base.pth --topk 8

The generic ``predict`` command (``ovcore.cmd.predict``) with SED's weight sources and inference options: folders are
searched recursively; ``<name>_labels.png``, ``<name>_overlay.png``, ``vocabulary.json`` and ``predictions.json``
(with the classes kept per CER stage) go to the output folder. ``--classes``, ``--classes-file`` and
``--dataset-classes`` are the deprecated spellings of ``--vocabulary``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ovcore.cmd.errors import run_command
from ovcore.cmd.predict import PredictOptions
from sed.cli._common import SEDModelOptions

__all__ = ["DEPRECATED_FLAGS", "PredictConfig", "main", "parse", "run"]

PROG = "sed-predict"

DEPRECATED_FLAGS = {"--classes": "--vocabulary", "--classes-file": "--vocabulary", "--dataset-classes": "--vocabulary"}
"""Old spelling -> new flag (accepted for one release, with a warning)."""


@dataclass(kw_only=True)
class PredictConfig(SEDModelOptions, PredictOptions):
    """Segment images with SED and a free vocabulary: label-map PNGs, overlays with a legend, predictions.json."""

    output_dir: str | None = "runs/sed_predict"
    """Folder for the label maps, overlays, vocabulary.json and predictions.json."""

    def validate(self) -> None:
        """Check the numeric options before the model is built; the messages name the flags."""
        SEDModelOptions.validate(self)
        PredictOptions.validate(self)


def parse(argv: Sequence[str] | None = None) -> PredictConfig:
    """Command line -> options (old flag spellings rewritten with a warning)."""
    import sys

    import tyro

    from ovcore.cmd.options import rename_flags

    args = rename_flags(sys.argv[1:] if argv is None else argv, DEPRECATED_FLAGS, PROG)
    return tyro.cli(PredictConfig, args=args, prog=PROG)


def run(cfg: PredictConfig) -> list[dict[str, Any]]:
    """Body of ``sed-predict`` (inputs are checked before the model is built)."""
    from ovcore.cmd.predict import run_predict
    from sed.cli._common import load_sed

    return run_predict("sed", cfg, load=load_sed, prog=PROG)


def main(argv: Sequence[str] | None = None) -> int:
    """Console script ``sed-predict``."""
    from ovcore.cmd.log import setup_logging

    setup_logging()
    return run_command(PROG, lambda: run(parse(argv)))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

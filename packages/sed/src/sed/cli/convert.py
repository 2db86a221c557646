"""``sed-convert``: the official SED checkpoint converter's command line (the conversion is :mod:`sed.convert`).

    sed-convert sed_model_base.pth sed_b.safetensors [--hub-folder DIR] [--variant b|l]

The parser lives here, apart from the converter, so that ``--help`` and argument errors do not import torch.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ovcore.cmd.errors import run_command

__all__ = ["build_parser", "main"]

PROG = "sed-convert"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``sed-convert``."""
    parser = argparse.ArgumentParser(
        prog=PROG, description="Convert an official SED detectron2 checkpoint to this package's layout."
    )
    parser.add_argument("input", help="official checkpoint (.pth with a 'model' key)")
    parser.add_argument("output", nargs="?", default=None, help="output file: .safetensors or .pth")
    parser.add_argument(
        "--hub-folder",
        default=None,
        help="also (or only) write the Hugging Face Hub layout here: config.json, model.safetensors and a model card "
        "with the paper's figures; publish it with `hf upload ORG/REPO DIR .`",
    )
    parser.add_argument("--variant", default=None, help="'b', 'l' or a preset name (default: inferred)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Console script ``sed-convert``: ``OFFICIAL.pth [OUT.(safetensors|pth)] [--hub-folder DIR] [--variant b|l]``."""
    args = build_parser().parse_args(None if argv is None else list(argv))

    def body() -> None:
        from sed.convert import convert_command  # deferred: the converter imports torch

        convert_command(args.input, args.output, args.variant, args.hub_folder)

    return run_command(PROG, body)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

"""``ovseg-app``: start the web demo.

    uv run ovseg-app                                   # http://127.0.0.1:7860, sed_tiny with the sed-demo weights
    uv run ovseg-app --preset maskclip_vit_b16 --port 8000
    uv run ovseg-app --preset sed_convnext_b_768 --checkpoint sed_convnext_b_768.safetensors --device cuda

The options are parsed before torch and gradio are imported, so ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence

__all__ = ["build_parser", "main", "settings_from_args"]

_DEMO_CHECKPOINT = "runs/demo/train/checkpoints/ckpt_0000800.pt"


def build_parser() -> argparse.ArgumentParser:
    """The ``ovseg-app`` options."""
    p = argparse.ArgumentParser(
        prog="ovseg-app",
        description="A web page to segment an image with any method of this repository: upload or pick an image, "
        "type a vocabulary or pick a dataset's, choose the preset and weights, and see the overlay, the legend "
        "with each class's area, SED's classes kept per CER stage and the latency.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--preset", default="sed_tiny", help="preset selected when the page opens (default sed_tiny)")
    p.add_argument(
        "--checkpoint",
        default=None,
        help="weights selected when the page opens: a checkpoint file, a pretrained folder or hf-hub:org/repo. "
        f"Default: for sed_tiny the demo checkpoint {_DEMO_CHECKPOINT} when `uv run sed-demo` has written it "
        "(random-CLIP demo weights), else the preset's own weights; give '' for the preset's own",
    )
    p.add_argument("--device", default="auto", help="'auto' (CUDA when available), 'cpu' or 'cuda[:N]'")
    p.add_argument("--max-image-side", type=int, default=4096, help="largest accepted image side in pixels")
    p.add_argument("--max-classes", type=int, default=1000, help="largest accepted vocabulary")
    p.add_argument("--max-name-chars", type=int, default=128, help="longest accepted class name")
    p.add_argument("--max-file-size", default="20mb", help="largest accepted upload (gradio size, e.g. 20mb)")
    p.add_argument("--queue-size", type=int, default=16, help="requests that may wait while one runs")
    p.add_argument("--share", action="store_true", help="also open a public gradio.live link (off by default)")
    return p


def settings_from_args(args: argparse.Namespace) -> object:
    """The :class:`ovseg_app.logic.AppSettings` of parsed options (the demo checkpoint filled in when found).

    Raises:
        ValueError: a limit below 1 or a bad port.
    """
    from ovseg_app.logic import AppSettings, default_weights

    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port must lie in 0..65535, got {args.port}")
    weights = default_weights(args.preset) if args.checkpoint is None else args.checkpoint
    return AppSettings(
        preset=args.preset,
        weights=weights,
        device=args.device,
        max_image_side=args.max_image_side,
        max_classes=args.max_classes,
        max_name_chars=args.max_name_chars,
        queue_size=args.queue_size,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Console script ``ovseg-app``: bad options and unusable settings end as one ``ovseg-app: error:`` line."""
    args = build_parser().parse_args(argv)
    # Gradio reports usage to its servers unless told not to; a local demo (often offline) has no reason to.
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from ovcore.cmd.errors import run_command

    def body() -> None:
        settings = settings_from_args(args)
        from ovseg_app.ui import build_app, launch  # deferred: gradio and torch take seconds to import

        launch(build_app(settings), args.host, args.port, share=args.share, max_file_size=args.max_file_size)

    return run_command("ovseg-app", body)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

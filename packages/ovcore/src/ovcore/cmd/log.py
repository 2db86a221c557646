"""Logging and console output of every command: one setup, one way to print a line above a progress bar."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

__all__ = ["quiet_logger", "say", "setup_logging", "warn"]

_PACKAGES = ("ovcore", "sed", "clipzss", "maskclip")


def setup_logging(verbose: bool = False, packages: Sequence[str] = _PACKAGES) -> None:
    """Warnings of every library, INFO lines of this workspace's packages (DEBUG with ``verbose``).

    Third-party INFO chatter (open_clip's model-loading steps) stays hidden; under torchrun only rank 0 logs INFO.
    Does nothing when the host process (an application, pytest) has configured logging already.
    """
    if logging.getLogger().handlers:
        return
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(message)s")
    level = logging.DEBUG if verbose else logging.INFO
    if int(os.environ.get("RANK", "0")) != 0:
        level = logging.WARNING
    for name in packages:
        logging.getLogger(name).setLevel(level)


def say(line: str = "") -> None:
    """Print one line of command output to stdout, above any active progress bar (which is redrawn below it)."""
    if "tqdm" in sys.modules:  # a bar may be active: let tqdm move it
        from tqdm.auto import tqdm

        tqdm.write(line, file=sys.stdout)
    else:
        sys.stdout.write(line + "\n")
    sys.stdout.flush()


def warn(prog: str, message: str) -> None:
    """``prog: warning: message`` on stderr (deprecations, notes that do not stop the command)."""
    sys.stderr.write(f"{prog}: warning: {message}\n")
    sys.stderr.flush()


@contextmanager
def quiet_logger(name: str, quiet: bool = True) -> Iterator[None]:
    """Raise ``name``'s level to WARNING for the block (e.g. ovcore.evaluate's per-class tables), then restore it."""
    logger = logging.getLogger(name)
    level = logger.level
    if quiet:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)

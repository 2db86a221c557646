"""Command lines with presets plus overrides, built with ``tyro`` from the config dataclasses.

``preset_cli(PRESETS, default="sed_convnext_b_768")`` gives an entry point such as::

    sed-train --preset sed_convnext_l_768 --optim.lr 1e-4 --max-iters 20000 --output-dir runs/l

``--preset NAME`` picks a config object (presets are data: a dict of config instances, as open_clip's model
configs), and every other flag overrides one field of it; ``--help`` lists every field with its docstring and the
chosen preset's value as the default (``--preset NAME --help`` shows that preset's values).
"""

from __future__ import annotations

import copy
import dataclasses
import sys
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, TypeVar

import tyro

T = TypeVar("T")


def _split(presets: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
    descriptions, configs = {}, {}
    for name, value in presets.items():
        if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str):
            descriptions[name], configs[name] = value
        else:
            descriptions[name], configs[name] = "", value
    return descriptions, configs


def preset_cli(
    presets: Mapping[str, T] | Mapping[str, tuple[str, T]],
    *,
    default: str | None = None,
    args: Sequence[str] | None = None,
    prog: str | None = None,
    description: str | None = None,
) -> T:
    """Parse ``--preset NAME`` and field overrides into a copy of the chosen preset.

    Args:
        presets: Name -> config dataclass instance, or name -> ``(description, instance)``. All presets should share
            one type (the first one's type defines the flags).
        default: Preset used without ``--preset`` (default: the first).
        args: Arguments to parse (default: ``sys.argv[1:]``).
        prog: Program name shown in ``--help``.
        description: Text shown in ``--help`` (default: the config class's docstring).

    Returns:
        The chosen preset (deep-copied) with the overrides applied.

    Raises:
        ValueError: No presets, or an unknown default.
        SystemExit: Bad command line, or ``--help`` (from tyro / argparse).
    """
    descriptions, configs = _split(presets)
    if not configs:
        raise ValueError("preset_cli needs at least one preset")
    names = tuple(configs)
    default = names[0] if default is None else default
    if default not in configs:
        raise ValueError(f"default preset {default!r} is not one of {list(names)}")
    args = list(sys.argv[1:] if args is None else args)
    choice_type: Any = Literal.__getitem__(names)  # Literal[names] with names known only at run time
    listing = "; ".join(f"{n}: {d}" if d else n for n, d in descriptions.items())
    preset_help = f"Preset to start from ({listing}); other flags override its fields."

    # Stage 1 reads only --preset (everything else, --help included, passes through) ...
    chooser = dataclasses.make_dataclass(
        "PresetChoice",
        [("preset", Annotated[choice_type, tyro.conf.arg(help=preset_help)], dataclasses.field(default=default))],
    )
    chosen, _ = tyro.cli(chooser, args=args, prog=prog, add_help=False, return_unknown_args=True)
    base = configs[chosen.preset]

    # ... stage 2 parses the whole command line against the chosen preset, so the defaults shown by --help and the
    # values left untouched are that preset's. --preset stays a (documented) flag of this parser too.
    config_type = type(base)
    wrapper = dataclasses.make_dataclass(
        config_type.__name__ + "CLI",
        [
            (
                "preset",
                Annotated[choice_type, tyro.conf.arg(help=preset_help)],
                dataclasses.field(default=chosen.preset),
            ),
            (
                "config",
                Annotated[config_type, tyro.conf.arg(name="")],  # no "config." prefix on the flags
                dataclasses.field(default_factory=lambda: copy.deepcopy(base)),
            ),
        ],
    )
    parsed = tyro.cli(wrapper, args=args, prog=prog, description=description or config_type.__doc__)
    return parsed.config

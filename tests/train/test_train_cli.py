"""Preset + override command lines built with tyro."""

from __future__ import annotations

import dataclasses
import re

import pytest

from ovcore.train import OptimConfig, ScheduleConfig, TrainConfig, preset_cli


@dataclasses.dataclass
class DemoTrainConfig(TrainConfig):
    """Train the demo method."""

    width: int = 16
    """Decoder width."""


PRESETS = {
    "small": ("a small model", DemoTrainConfig(width=8, max_iters=100)),
    "paper": (
        "the paper's recipe",
        DemoTrainConfig(
            width=64,
            max_iters=80000,
            batch_size=4,
            clip_grad_norm=0.01,
            optim=OptimConfig(lr=2e-4, weight_decay=1e-4, lr_multipliers=(("clip_model", 0.01),)),
            schedule=ScheduleConfig(name="cosine"),
        ),
    ),
}


def _flags(cls, prefix: str = ""):
    for f in dataclasses.fields(cls):
        name = prefix + f.name.replace("_", "-")
        if dataclasses.is_dataclass(f.type if isinstance(f.type, type) else None):
            yield from _flags(f.type, name + ".")
        elif f.name in ("optim", "schedule"):
            yield from _flags(OptimConfig if f.name == "optim" else ScheduleConfig, name + ".")
        else:
            yield "--" + name


def test_default_preset_and_overrides() -> None:
    cfg = preset_cli(PRESETS, default="paper", args=[])
    assert cfg == PRESETS["paper"][1] and cfg is not PRESETS["paper"][1]
    cfg = preset_cli(PRESETS, default="paper", args=["--optim.lr", "1e-4", "--max-iters", "20", "--width", "3"])
    assert (cfg.optim.lr, cfg.max_iters, cfg.width) == (1e-4, 20, 3)
    assert cfg.optim.lr_multipliers == (("clip_model", 0.01),) and cfg.clip_grad_norm == 0.01  # untouched preset values
    assert PRESETS["paper"][1].optim.lr == 2e-4  # the preset itself is not modified


def test_choose_preset_anywhere_on_the_line() -> None:
    cfg = preset_cli(
        PRESETS,
        args=[
            "--max-iters",
            "7",
            "--preset",
            "paper",
            "--schedule.name",
            "poly",
            "--optim.lr-multipliers",
            "clip_model",
            "0.1",
            "head",
            "10",
        ],
    )
    assert (cfg.width, cfg.max_iters, cfg.schedule.name) == (64, 7, "poly")
    assert cfg.optim.lr_multipliers == (("clip_model", 0.1), ("head", 10.0))  # replaces the preset's pairs
    assert preset_cli(PRESETS, args=["--preset=small"]).width == 8
    assert preset_cli(PRESETS, args=[]).width == 8  # first preset by default
    cfg = preset_cli(PRESETS, args=["--clip-grad-norm", "None", "--resume", "--amp", "bf16"])
    assert cfg.clip_grad_norm is None and cfg.resume and cfg.amp == "bf16"


def test_help_documents_every_option(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        preset_cli(PRESETS, default="paper", args=["--help"], prog="demo-train")
    assert exit_info.value.code == 0
    text = re.sub(r"[\s│╭╮╰╯─]+", " ", capsys.readouterr().out)
    assert "demo-train" in text and "Train the demo method." in text
    assert "small: a small model" in text and "paper: the paper's recipe" in text
    flags = list(_flags(DemoTrainConfig))
    assert len(flags) > 40
    for flag in flags:
        assert re.search(re.escape(flag) + "[ ,]", text), flag
    # Every field has a docstring, and the help shows it (first words are enough, the rest wraps).
    for cls in (TrainConfig, OptimConfig, ScheduleConfig):
        for f in dataclasses.fields(cls):
            doc = _field_doc(cls, f.name)
            assert doc, f"{cls.__name__}.{f.name} has no docstring"
            assert " ".join(doc.split()[:3]) in text, (f.name, doc)
    assert "(default: 80000)" in text  # the chosen preset's values are the defaults shown


def _field_doc(cls, name: str) -> str:
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(cls))
    body = tree.body[0].body
    for node, nxt in zip(body, body[1:], strict=False):
        if isinstance(node, ast.AnnAssign) and node.target.id == name:
            if isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant):
                return nxt.value.value
    return ""


def test_bad_command_lines(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        preset_cli(PRESETS, args=["--preset", "nope"])
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit):
        preset_cli(PRESETS, args=["--no-such-flag", "1"])
    with pytest.raises(SystemExit):
        preset_cli(PRESETS, args=["--schedule.name", "linear"])
    with pytest.raises(ValueError):
        preset_cli({}, args=[])
    with pytest.raises(ValueError):
        preset_cli(PRESETS, default="missing", args=[])
    capsys.readouterr()


def test_config_to_dict_writes_paths_as_paths() -> None:
    import dataclasses
    from pathlib import Path

    from ovcore.train import config_to_dict

    @dataclasses.dataclass
    class WithPath:
        root: Path = Path("/data/coco")
        nested: dict = dataclasses.field(default_factory=lambda: {"cache": Path("c")})

    assert config_to_dict(WithPath()) == {"root": "/data/coco", "nested": {"cache": "c"}}

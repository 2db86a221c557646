"""Every console script reports user and environment errors as ONE line ``prog: error: ...`` with exit status 2
(README "Errors"); numeric options are validated; interrupted writes leave no temporary files behind.

The commands run in-process through their ``main`` (fast); two cases run the real console entry points in a
subprocess. Every case fails before the bad input could reach a model (no model is built here).
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from clipzss.cli import eval as clipzss_eval
from clipzss.cli import train as clipzss_train
from ovcore import cli as ovcore_cli
from ovcore.cmd.errors import check_output_dir, run_command
from ovcore.data import write_demo_dataset
from ovcore.files import atomic_write, remove_stale_temporaries
from ovcore.train import Checkpointer, TrainConfig
from sed import convert as sed_convert
from sed.cli import convert as sed_convert_cli
from sed.cli import demo as sed_demo
from sed.cli import eval as sed_eval
from sed.cli import predict as sed_predict
from sed.cli import train as sed_train
from sed.cli._common import build_split

Main = Callable[[Sequence[str]], Any]


# ------------------------------------------------------------------------------------------------------ helpers
def _call(main: Main, argv: Sequence[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run a console script's main in-process: (exit status, stdout, stderr)."""
    try:
        code = main(list(argv))
    except SystemExit as exit_:  # the clipzss commands raise their status; the parser raises on --help
        code = exit_.code
    captured = capsys.readouterr()
    return (0 if code is None else int(code)), captured.out, captured.err


def _one_error_line(main: Main, argv: Sequence[str], capsys: pytest.CaptureFixture[str], prog: str) -> str:
    """Assert the convention (status 2, exactly one stderr line ``prog: error: ``, no traceback); return the line."""
    code, _, err = _call(main, argv, capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert "Traceback" not in err, err
    assert len(lines) == 1, err
    assert lines[0].startswith(f"{prog}: error: "), err
    assert "weights_only=False" not in lines[0] and "`weights_only` set to `False`" not in lines[0]
    return lines[0]


def _dead_pid() -> int:
    """The pid of a process that has exited (for temporaries "left by a killed writer")."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _damaged(tmp_path: Path, kind: str) -> Path:
    """A checkpoint file that cannot be read: truncated, random bytes, or empty."""
    path = tmp_path / f"{kind}.pt"
    if kind == "truncated":
        torch.save({"model": {"w": torch.zeros(256)}}, path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "random":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    else:
        path.write_bytes(b"")
    return path


@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    path = tmp_path / "not_a_folder"
    path.write_text("x")
    return path


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("datasets")
    write_demo_dataset(root, num_train=4, num_val=2, size=64)
    return root


SED_TRAIN = ["--preset", "sed_tiny", "--dataset", "demo", "--no-progress", "--no-tensorboard", "--num-workers", "0"]
CLIPZSS_TRAIN = ["--experiment", "demo", "--no-progress", "--no-tensorboard", "--num-workers", "0",
                 "--teacher-pretrained", "none", "--student-pretrained", "none"]


# ------------------------------------------------------------------------------------------ one line per error
def test_output_dir_that_is_a_file(a_file: Path, demo_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases: list[tuple[Main, str, list[str]]] = [
        (sed_train.main, "sed-train", [*SED_TRAIN, "--output-dir", str(a_file)]),
        (sed_eval.main, "sed-eval", ["--random-weights", "--dataset", "demo", "--output-dir", str(a_file)]),
        (sed_predict.main, "sed-predict", [str(a_file), "--vocabulary", "a,b", "--random-weights",
                                           "--output-dir", str(a_file / "sub")]),
        (sed_demo.main, "sed-demo", ["--quick", "--output-dir", str(a_file)]),
        (clipzss_train.main, "clipzss-train", [*CLIPZSS_TRAIN, "--data-root", str(demo_root),
                                               "--output-dir", str(a_file)]),
        (ovcore_cli.main, "ovcore", ["demo-data", "--root", str(a_file)]),
    ]
    for main, prog, argv in cases:
        line = _one_error_line(main, argv, capsys, prog)
        assert "--output-dir" in line or "--root" in line, line
        assert str(a_file) in line, line


def test_read_only_output_dir_is_explained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    # Tests may run as root, for whom chmod does not make a folder read-only: the probe write is made to fail.
    import ovcore.cmd.errors as command

    def denied(*args: Any, **kwargs: Any) -> Any:
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path))

    monkeypatch.setattr(command.tempfile, "mkstemp", denied)
    line = _one_error_line(sed_eval.main, ["--random-weights", "--dataset", "demo", "--output-dir",
                                           str(tmp_path / "out")], capsys, "sed-eval")
    assert "--output-dir" in line and "permission denied" in line and "writable" in line


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_dir_for_real(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(ValueError, match="--output-dir.*writable"):
            check_output_dir(folder / "run", "--output-dir")
    finally:
        folder.chmod(0o700)


def test_sed_convert_has_the_wrapper(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = _one_error_line(sed_convert_cli.main, [str(tmp_path / "missing.pth"), str(tmp_path / "o.safetensors")],
                           capsys, "sed-convert")
    assert "INPUT" in line and "missing.pth" in line
    line = _one_error_line(sed_convert_cli.main, [str(_damaged(tmp_path, "random")), str(tmp_path / "o.safetensors")],
                           capsys, "sed-convert")
    assert "random.pt" in line
    line = _one_error_line(sed_convert_cli.main, [str(_damaged(tmp_path, "truncated")), str(tmp_path / "o.pth")],
                           capsys, "sed-convert")
    assert "truncated.pt" in line
    assert _one_error_line(sed_convert_cli.main, [str(_damaged(tmp_path, "empty")), str(tmp_path / "o.txt")],
                           capsys, "sed-convert").count("OUTPUT") == 1


def test_ovcore_prepare_without_the_raw_download(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = _one_error_line(ovcore_cli.main, ["prepare", "voc", "--root", str(tmp_path)], capsys, "ovcore")
    assert str(tmp_path) in line
    line = _one_error_line(ovcore_cli.main, ["prepare", "voc", "--root", str(tmp_path / "nowhere")], capsys,
                           "ovcore")
    assert "--root" in line
    assert "--workers" in _one_error_line(ovcore_cli.main, ["prepare", "voc", "--root", str(tmp_path),
                                                            "--workers", "-1"], capsys, "ovcore")


# ----------------------------------------------------------------------------------------- damaged checkpoints
@pytest.mark.parametrize("kind", ["truncated", "random", "empty"])
def test_damaged_checkpoint_to_resume_from(kind: str, tmp_path: Path, demo_root: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    bad = _damaged(tmp_path, kind)
    line = _one_error_line(sed_train.main, [*SED_TRAIN, "--output-dir", str(tmp_path / "run"),
                                            "--resume-from", str(bad)], capsys, "sed-train")
    assert "--resume-from" in line and bad.name in line
    line = _one_error_line(clipzss_train.main, [*CLIPZSS_TRAIN, "--data-root", str(demo_root), "--output-dir",
                                                str(tmp_path / "zss"), "--resume-from", str(bad)],
                           capsys, "clipzss-train")
    assert "--resume-from" in line and bad.name in line


def test_resume_with_a_damaged_latest_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "ckpt_0000002.pt").write_bytes(_damaged(tmp_path, "truncated").read_bytes())
    line = _one_error_line(sed_train.main, [*SED_TRAIN, "--output-dir", str(run), "--resume"], capsys, "sed-train")
    assert "--resume" in line and "ckpt_0000002.pt" in line and "delete it" in line


def test_clipzss_train_with_a_wrong_checkpoint(tmp_path: Path, demo_root: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    weights = tmp_path / "weights.pt"
    torch.save({"student": {"w": torch.zeros(2)}}, weights)  # readable, but not a training checkpoint
    line = _one_error_line(clipzss_train.main, [*CLIPZSS_TRAIN, "--data-root", str(demo_root), "--output-dir",
                                                str(tmp_path / "zss"), "--resume-from", str(weights)],
                           capsys, "clipzss-train")
    assert "--resume-from" in line and "not a training checkpoint" in line
    line = _one_error_line(clipzss_train.main, [*CLIPZSS_TRAIN, "--data-root", str(demo_root), "--output-dir",
                                                str(tmp_path / "zss"), "--resume-from", str(tmp_path / "nope.pt")],
                           capsys, "clipzss-train")
    assert "--resume-from" in line and "nope.pt" in line


@pytest.mark.parametrize("kind", ["truncated", "random", "empty"])
def test_damaged_inference_checkpoint(kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import clipzss

    bad = _damaged(tmp_path, kind)
    with pytest.raises(ValueError) as info:
        clipzss.create_segmenter(bad)
    assert bad.name in str(info.value) and "weights_only" not in str(info.value)
    line = _one_error_line(clipzss_eval.main, ["--checkpoint", str(bad), "--data-root", str(tmp_path)], capsys,
                           "clipzss-eval")
    assert "--checkpoint" in line and bad.name in line


def test_create_segmenter_names_a_foreign_checkpoint(tmp_path: Path) -> None:
    import clipzss

    path = tmp_path / "ckpt_0000001.pt"
    torch.save({"format": "ovcore.train/1", "model": {}}, path)
    with pytest.raises(ValueError, match="ckpt_0000001.pt is not a CLIP-ZSS inference checkpoint.*clipzss_inference"):
        clipzss.create_segmenter(path)


# ---------------------------------------------------------------------------------------------------- disk full
def test_disk_full_while_saving_names_the_path_and_free_space(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "official.pth"
    torch.save({"model": {}}, source)
    monkeypatch.setattr(sed_convert, "read_checkpoint", lambda path: {"model": {}})
    monkeypatch.setattr(sed_convert, "convert_official_checkpoint", lambda raw, variant: {"w": torch.zeros(4)})

    def full(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sed_convert.torch, "save", full)
    out = tmp_path / "converted.pth"
    line = _one_error_line(sed_convert_cli.main, [str(source), str(out), "--variant", "sed_tiny"], capsys,
                           "sed-convert")
    assert str(out) in line and "no space left" in line and "free in" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["official.pth"]  # no torn file, no temporary


def test_torch_inline_container_error_is_explained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    # What torch.save raises when the disk fills mid-write: a RuntimeError from its zip writer.
    import ovcore.train.checkpoint as checkpoint

    def cryptic(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 4800 vs 4736")

    monkeypatch.setattr(checkpoint.torch, "save", cryptic)
    target = tmp_path / "ckpt" / "ckpt_0000001.pt"
    code = run_command("prog", lambda: Checkpointer(target.parent).save({"x": 1}, 1))
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "enforce fail" not in err and "inline_container.cc" not in err
    assert err.startswith(f"prog: error: cannot write {target}") and "free" in err


# --------------------------------------------------------------------------------------------- numeric options
@pytest.mark.parametrize(
    ("main", "prog", "argv", "option"),
    [
        (sed_train.main, "sed-train", [*SED_TRAIN, "--batch-size", "0"], "--batch-size"),
        (sed_train.main, "sed-train", [*SED_TRAIN, "--max-iters", "0"], "--max-iters"),
        (sed_train.main, "sed-train", [*SED_TRAIN, "--optim.lr", "0"], "--optim.lr"),
        (sed_train.main, "sed-train", [*SED_TRAIN, "--num-workers", "-1"], "--num-workers"),
        (sed_train.main, "sed-train", [*SED_TRAIN, "--crop-size", "0"], "--crop-size"),
        (sed_eval.main, "sed-eval", ["--random-weights", "--dataset", "demo", "--num-workers", "-2"], "--num-workers"),
        (sed_eval.main, "sed-eval", ["--random-weights", "--dataset", "demo", "--topk", "-1"], "--topk"),
        (sed_predict.main, "sed-predict", ["x.png", "--vocabulary", "a", "--random-weights", "--alpha", "2"],
         "--alpha"),
        (sed_demo.main, "sed-demo", ["--batch-size", "0"], "--batch-size"),
        (clipzss_train.main, "clipzss-train", [*CLIPZSS_TRAIN, "--batch-size", "0"], "--batch-size"),
        (clipzss_train.main, "clipzss-train", [*CLIPZSS_TRAIN, "--model.crop-size", "0"], "--model.crop-size"),
        (clipzss_train.main, "clipzss-train", [*CLIPZSS_TRAIN, "--data.eval-batch-size", "0"],
         "--data.eval-batch-size"),
        (clipzss_eval.main, "clipzss-eval", ["--checkpoint", "x.pt", "--num-workers", "-1"], "--num-workers"),
        (ovcore_cli.main, "ovcore", ["demo-data", "--num-train", "0"], "--num-train"),
    ],
)
def test_numeric_options_are_validated(main: Main, prog: str, argv: list[str], option: str,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    line = _one_error_line(main, argv, capsys, prog)
    assert option in line


def test_train_config_validate_names_every_flag() -> None:
    TrainConfig().validate()
    for field, value, option in (("batch_size", 0, "--batch-size"), ("grad_accum_steps", 0, "--grad-accum-steps"),
                                 ("keep_last", -1, "--keep-last"), ("clip_grad_norm", 0.0, "--clip-grad-norm")):
        with pytest.raises(ValueError, match=option):
            TrainConfig(**{field: value}).validate()


# ------------------------------------------------------------------------------------------------ demo fallback
def test_demo_fallback_only_without_a_data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    line = _one_error_line(sed_eval.main, ["--random-weights", "--dataset", "demo", "--data-root", str(tmp_path),
                                           "--output-dir", str(tmp_path / "out")], capsys, "sed-eval")
    assert "--data-root" in line and "ovcore demo-data" in line
    # Without --data-root the built-in scenes are used, and the output says so.
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path))
    data = build_split("demo", None, "val", memory_fallback=True)
    assert len(data) == 16 and "built-in demo scenes" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------------ interruption
def test_ctrl_c_is_one_line_and_status_130(capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted() -> None:
        raise KeyboardInterrupt

    assert run_command("prog", interrupted) == 130
    assert capsys.readouterr().err == "prog: interrupted\n"


def test_bugs_keep_their_traceback() -> None:
    def bug() -> None:
        raise KeyError("internal")

    with pytest.raises(KeyError):
        run_command("prog", bug)


# --------------------------------------------------------------------------------------------- temporaries
def test_stale_checkpoint_temporaries_are_removed(tmp_path: Path) -> None:
    from ovcore.train import train

    sys.path.insert(0, str(Path(__file__).parents[1] / "train"))
    try:
        from train_fixtures import RandomSegmentation, TinySegmenter, tiny_config
    finally:
        sys.path.pop(0)
    ckpts = tmp_path / "checkpoints"
    ckpts.mkdir(parents=True)
    stale = ckpts / f".ckpt_0000005.pt.{_dead_pid()}.0123abcd.tmp"  # the naming scheme of ovcore.files
    stale.write_bytes(b"half a checkpoint")
    live = ckpts / f".ckpt_0000006.pt.{os.getpid()}.0123abcd.tmp"  # a writer still running keeps its file
    live.write_bytes(b"in progress")
    train(tiny_config(tmp_path, max_iters=1), TinySegmenter, RandomSegmentation(8))
    assert not stale.exists() and live.exists()


def test_a_killed_writer_leaves_a_temporary_that_the_next_run_removes(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import time
        from ovcore.files import atomic_write

        def slow(tmp):
            tmp.write_bytes(b"partial")
            print("writing", flush=True)
            time.sleep(60)

        atomic_write({str(tmp_path / "out.bin")!r}, slow)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].startswith(".out.bin.") and left[0].endswith(".tmp")
    assert [p.name for p in remove_stale_temporaries(tmp_path)] == left
    assert list(tmp_path.iterdir()) == []


def test_ovcore_prepare_removes_temporaries_of_a_killed_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = tmp_path / "coco-stuff/annotations/val2017/000000000139.png"
    raw.parent.mkdir(parents=True)
    Image.fromarray(np.array([[0, 11, 12], [91, 181, 40]], dtype=np.uint8)).save(raw)
    image = tmp_path / "coco-stuff/images/val2017/000000000139.jpg"
    image.parent.mkdir(parents=True)
    Image.fromarray(np.zeros((2, 3, 3), dtype=np.uint8)).save(image)
    assert ovcore_cli.main(["prepare", "coco_stuff", "--root", str(tmp_path), "--splits", "val"]) == 0
    out = tmp_path / "coco-stuff/annotations_detectron2/val2017"
    stale = out / f".000000000140.png.{_dead_pid()}.feedbeef.tmp"
    stale.write_bytes(b"half a label")
    assert ovcore_cli.main(["prepare", "coco_stuff", "--root", str(tmp_path), "--splits", "val"]) == 0
    assert not stale.exists() and (out / "000000000139.png").is_file()
    capsys.readouterr()


def test_atomic_write_uses_the_scheme_the_cleaner_reads(tmp_path: Path) -> None:
    seen: list[str] = []
    atomic_write(tmp_path / "x.txt", lambda tmp: (seen.append(tmp.name), tmp.write_text("x")))
    assert seen[0].startswith(".x.txt.") and seen[0].endswith(".tmp")


# ------------------------------------------------------------------------------------------------- subprocess
@pytest.mark.parametrize(
    ("module", "argv", "prog"),
    [
        ("ovcore.cli", ["prepare", "voc", "--root", "{tmp}"], "ovcore"),
        ("sed.cli.convert", ["{tmp}/missing.pth", "{tmp}/out.safetensors"], "sed-convert"),
    ],
)
def test_console_scripts_in_a_subprocess(module: str, argv: list[str], prog: str, tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", module, *(a.format(tmp=tmp_path) for a in argv)],
                          capture_output=True, text=True, timeout=120)
    lines = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith(("INFO", "WARNING"))]
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), proc.stderr

"""No file a user loads may execute code: every reader refuses pickle gadgets and still reads legitimate files.

Each gadget, if unpickled, creates ``marker``; every test checks the refusal (a ``ValueError`` naming the file) and
that the marker was never created.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from pickle_gadgets import GADGET_NAMES, NUMPY_EXEC, gadgets

from ovcore.safe_load import load_pickle_file, load_torch_file, numpy_allowlist, pickle_globals

GADGETS = GADGET_NAMES


def _legit_looking(gadget: Any) -> dict[str, Any]:
    """A detectron2-style checkpoint with the gadget nested among real weights."""
    return {"model": {"w": np.ones((2, 3), np.float32), "b": torch.zeros(3), "extra": [1, {"x": gadget}]}}


def _assert_refused(info: pytest.ExceptionInfo[ValueError], path: Path, marker: Path) -> None:
    message = str(info.value)
    assert str(path) in message
    assert "refusing" in message and "re-save" in message
    assert not marker.exists()


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "marker.txt"


def _gadget(marker: Path, name: str) -> Any:
    return gadgets(marker)[name]


def test_gadgets_really_run_when_unpickled(tmp_path: Path, marker: Path) -> None:
    # Guards the other tests: each gadget does create the marker under a plain pickle.loads.
    for name in GADGETS:
        pickle.loads(pickle.dumps(_gadget(marker, name)))
        assert marker.exists(), name
        marker.unlink()


# ------------------------------------------------------------------------------------------------ torch files
@pytest.mark.parametrize("zipped", [True, False], ids=["zip", "legacy"])
@pytest.mark.parametrize("name", GADGETS)
def test_torch_file_refuses_gadgets(tmp_path: Path, marker: Path, name: str, zipped: bool) -> None:
    path = tmp_path / "model_final.pth"
    torch.save(_legit_looking(_gadget(marker, name)), path, _use_new_zipfile_serialization=zipped)
    with pytest.raises(ValueError, match="refusing to load checkpoint") as info:
        load_torch_file(path)
    _assert_refused(info, path, marker)


def test_torch_file_refuses_even_when_torch_allowlist_was_widened(tmp_path: Path, marker: Path) -> None:
    # Another library may call torch.serialization.add_safe_globals; the archive scan does not trust that list.
    path = tmp_path / "ckpt.pt"
    torch.save(_legit_looking(_gadget(marker, "numpy exec")), path)
    with torch.serialization.safe_globals([NUMPY_EXEC]), pytest.raises(ValueError, match="runstring") as info:
        load_torch_file(path)
    _assert_refused(info, path, marker)


def test_torch_file_reads_numpy_arrays_and_scalars(tmp_path: Path) -> None:
    state = {
        "model": {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "h": np.ones(2, np.float16), "t": torch.ones(2)},
        "iteration": np.int64(7),
        "names": np.array(["a", "bc"]),
        "flags": np.array([True, False]),
    }
    path = tmp_path / "model_final.pth"
    torch.save(state, path)
    out = load_torch_file(path)
    np.testing.assert_array_equal(out["model"]["w"], state["model"]["w"])
    assert out["model"]["h"].dtype == np.float16 and out["iteration"] == 7
    assert out["names"].tolist() == ["a", "bc"] and out["flags"].tolist() == [True, False]
    assert torch.equal(out["model"]["t"], torch.ones(2))


def _rename_numpy_core(path: Path) -> None:
    """Rewrite a torch.save archive as numpy 1 would have written it (``numpy.core`` instead of ``numpy._core``)."""
    with zipfile.ZipFile(path) as archive:
        records = {name: archive.read(name) for name in archive.namelist()}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, data in records.items():
            archive.writestr(name, data.replace(b"numpy._core.", b"numpy.core.") if name.endswith("data.pkl") else data)
    path.write_bytes(buffer.getvalue())


def test_torch_file_reads_numpy1_archives(tmp_path: Path) -> None:
    path = tmp_path / "old.pth"
    torch.save({"model": {"w": np.ones((2, 2), np.float32)}}, path)
    _rename_numpy_core(path)
    assert "numpy.core.multiarray._reconstruct" in pickle_globals(zipfile.ZipFile(path).read("old/data.pkl"))
    np.testing.assert_array_equal(load_torch_file(path)["model"]["w"], np.ones((2, 2), np.float32))


def test_numpy_allowlist_is_fixed() -> None:
    names = set(numpy_allowlist())
    assert {"numpy.ndarray", "numpy.dtype", "numpy._core.multiarray._reconstruct"} <= names
    callables = {n for n in names if not n.startswith("numpy.dtypes.")}
    assert callables == {
        "numpy.ndarray",
        "numpy.dtype",
        *(f"numpy.{core}.{m}" for core in ("core", "_core") for m in ("multiarray._reconstruct", "multiarray.scalar")),
        "numpy.core.numeric._frombuffer",
        "numpy._core.numeric._frombuffer",
    }
    assert all(issubclass(numpy_allowlist()[n], np.dtype) for n in names - callables)


def test_missing_torch_file_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_torch_file(tmp_path / "nope.pt")


# ------------------------------------------------------------------------------------------------ plain pickles
@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
@pytest.mark.parametrize("name", GADGETS)
def test_pickle_file_refuses_gadgets(tmp_path: Path, marker: Path, name: str, protocol: int) -> None:
    path = tmp_path / "index_ade20k.pkl"
    index = {"folder": ["a"], "filename": ["b.jpg"], "objectnames": np.array(["-"], dtype=object)}
    index["scene"] = [{"nested": _gadget(marker, name)}]
    path.write_bytes(pickle.dumps(index, protocol=protocol))
    with pytest.raises(ValueError, match="refusing to load ADE20K index") as info:
        load_pickle_file(path, what="ADE20K index")
    _assert_refused(info, path, marker)


def test_pickle_file_refuses_codecs_other_than_latin1(tmp_path: Path) -> None:
    path = tmp_path / "x.pkl"
    path.write_bytes(b"\x80\x02c_codecs\nencode\nq\x00X\x01\x00\x00\x00aX\x05\x00\x00\x00rot13\x86R.")
    with pytest.raises(ValueError, match="rot13"):
        load_pickle_file(path)


@pytest.mark.parametrize("protocol", [2, 3, pickle.HIGHEST_PROTOCOL])
def test_pickle_file_reads_ade20k_style_index(tmp_path: Path, protocol: int) -> None:
    index = {
        "folder": ["ADE20K_2021_17_01/images/ADE/training/a"],
        "filename": ["ADE_train_00000001.jpg"],
        "objectnames": np.array(["-", "wall"], dtype=object),
        "objectPresence": np.arange(4, dtype=np.uint8).reshape(2, 2),
        "wordnet": {"ids": (1, 2), "set": {3}, "frozen": frozenset({4}), "c": 1 + 2j, "raw": b"\x00\xff", "e": b""},
        "ratio": np.float64(0.5),
    }
    path = tmp_path / "index_ade20k.pkl"
    path.write_bytes(pickle.dumps(index, protocol=protocol))
    out = load_pickle_file(path)
    assert out["folder"] == index["folder"] and out["wordnet"] == index["wordnet"]
    assert out["objectnames"].tolist() == ["-", "wall"] and out["ratio"] == 0.5
    np.testing.assert_array_equal(out["objectPresence"], index["objectPresence"])


def test_corrupt_pickle_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.pkl"
    path.write_bytes(b"\x80\x04garbage")
    with pytest.raises(ValueError, match="broken.pkl"):
        load_pickle_file(path)


# ------------------------------------------------------------------------------------------------ every loader
def _save_gadget(path: Path, marker: Path, name: str = "numpy call") -> Path:
    torch.save(_legit_looking(_gadget(marker, name)), path)
    return path


@pytest.mark.parametrize("name", ["numpy call", "os.system"])
def test_clip_weights_refuse_gadgets(tmp_path: Path, marker: Path, name: str) -> None:
    from ovcore.clip import read_state_dict

    path = _save_gadget(tmp_path / "clip.bin", marker, name)
    with pytest.raises(ValueError, match="refusing") as info:
        read_state_dict(path)
    _assert_refused(info, path, marker)


def test_clip_weights_read_numpy_state_dict(tmp_path: Path) -> None:
    from ovcore.clip import read_state_dict

    path = tmp_path / "clip.pt"
    torch.save({"state_dict": {"w": torch.ones(2)}}, path)
    assert torch.equal(read_state_dict(path)["w"], torch.ones(2))


@pytest.mark.parametrize("name", ["numpy call", "builtins.eval"])
def test_train_checkpoint_refuses_gadgets(tmp_path: Path, marker: Path, name: str) -> None:
    from ovcore.train import load_checkpoint, load_model_weights

    path = _save_gadget(tmp_path / "ckpt_0000010.pt", marker, name)
    for load in (load_checkpoint, lambda p: load_model_weights(torch.nn.Linear(2, 3), p)):
        with pytest.raises(ValueError, match="refusing") as info:
            load(path)
        _assert_refused(info, path, marker)


def test_text_cache_ignores_gadget_files(tmp_path: Path, marker: Path) -> None:
    from ovcore.text import VocabularyCache

    cache = VocabularyCache(tmp_path)
    key = cache.key("m", "w", ["a photo of a {}."], ["cat"])
    torch.save({"key": key, "embeddings": torch.ones(1, 1, 2), "x": _gadget(marker, "numpy exec")}, cache.path(key))
    with pytest.warns(UserWarning, match="refusing"):
        assert cache.load(key) is None
    assert not marker.exists()
    cache.save(key, torch.ones(1, 1, 2))
    assert torch.equal(cache.load(key), torch.ones(1, 1, 2))


def test_ade20k_index_refuses_gadgets(tmp_path: Path, marker: Path) -> None:
    from ovcore.data.prepare import prepare_ade20k_847

    base = tmp_path / "ADE20K_2021_17_01"
    base.mkdir()
    index = {"folder": ["x"], "filename": ["y.jpg"], "objectnames": _gadget(marker, "numpy call")}
    (base / "index_ade20k.pkl").write_bytes(pickle.dumps(index, protocol=2))
    with pytest.raises(ValueError, match="refusing") as info:
        prepare_ade20k_847(tmp_path, progress=False)
    _assert_refused(info, base / "index_ade20k.pkl", marker)


@pytest.mark.parametrize("name", ["numpy call", "builtins.exec"])
def test_clipzss_checkpoints_refuse_gadgets(tmp_path: Path, marker: Path, name: str) -> None:
    from clipzss.cli.eval import load_inference_checkpoint
    from clipzss.segmenter import ZeroShotSegmenter

    path = _save_gadget(tmp_path / "inference.pt", marker, name)
    for load in (ZeroShotSegmenter.from_checkpoint, lambda p: load_inference_checkpoint(str(p))):
        with pytest.raises(ValueError, match="refusing") as info:
            load(path)
        _assert_refused(info, path, marker)


# ------------------------------------------------------------------------------------------------ TorchScript archives
class _Scriptable(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(2, 3)
        self.register_buffer("scale", torch.full((3,), 2.0, dtype=torch.float16))
        self.not_state = torch.zeros(1)  # a plain tensor attribute: not part of the state dict

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x) * self.scale + self.not_state


def _script_archive(path: Path) -> Path:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script is deprecated; OpenAI's files still exist
        torch.jit.save(torch.jit.script(_Scriptable()), path)
    return path


def test_torchscript_tensors_match_state_dict_without_compiling(tmp_path: Path, monkeypatch) -> None:
    from ovcore.safe_load import load_torchscript_tensors

    path = _script_archive(tmp_path / "ViT-B-16.pt")
    expected = torch.jit.load(str(path)).state_dict()

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("torch.jit.load must not be called")

    monkeypatch.setattr(torch.jit, "load", refuse)
    out = load_torchscript_tensors(path)
    assert set(out) == set(expected) == {"lin.weight", "lin.bias", "scale"}
    assert all(torch.equal(out[k], expected[k]) and out[k].dtype == expected[k].dtype for k in expected)


def test_torchscript_tensors_load_without_the_typed_storage_warning(tmp_path: Path) -> None:
    # Reading a legacy storage class's dtype warns "TypedStorage is deprecated": not the user's concern.
    import warnings

    from ovcore.safe_load import load_torchscript_tensors

    path = _script_archive(tmp_path / "ViT-B-16.pt")
    before = torch.storage._get_always_warn_typed_storage_removal()
    torch.storage._set_always_warn_typed_storage_removal(True)  # torch warns once per process otherwise
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            out = load_torchscript_tensors(path)
    finally:
        torch.storage._set_always_warn_typed_storage_removal(before)
    assert set(out) == {"lin.weight", "lin.bias", "scale"} and out["scale"].dtype == torch.float16


@pytest.mark.parametrize("name", ["os.system", "numpy call", "builtins.getattr"])
def test_torchscript_archive_refuses_gadgets(tmp_path: Path, marker: Path, name: str) -> None:
    from ovcore.clip import read_state_dict

    path = _script_archive(tmp_path / "ViT-B-16.pt")
    with zipfile.ZipFile(path) as archive:
        records = {n: archive.read(n) for n in archive.namelist()}
    evil = {"model": _gadget(marker, name)}
    records = {n: pickle.dumps(evil, protocol=2) if n.endswith("/data.pkl") else d for n, d in records.items()}
    with zipfile.ZipFile(path, "w") as archive:
        for n, d in records.items():
            archive.writestr(n, d)
    with pytest.raises(ValueError, match="refusing") as info:
        read_state_dict(path)
    _assert_refused(info, path, marker)

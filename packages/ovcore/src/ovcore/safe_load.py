"""Read user-supplied files without executing code: one allowlist, one way, for every method.

Pickle (and therefore ``torch.save``) files name Python callables that the reader calls while rebuilding the
object; a file from a stranger can name ``os.system`` or a library helper that evaluates a string. Every reader in
this workspace goes through this module instead of calling torch or pickle loaders directly:

- :func:`load_torch_file` reads ``torch.save`` files (zip archives and the legacy format) with
  ``torch.load(weights_only=True)``, admitting on top of torch's own tensor allowlist only the fixed numpy entries
  of :func:`numpy_allowlist`. Zip archives are scanned first, so a refused global is named before anything is
  unpickled, even when another library widened torch's process-wide allowlist.
- :func:`load_pickle_file` reads plain pickles (dataset index files) with a restricted unpickler that admits
  builtin containers and scalars and the same numpy entries.
- :func:`load_torchscript_tensors` reads the parameters and buffers of a TorchScript archive (OpenAI's original CLIP
  files) from its pickle without compiling or running the archive's TorchScript code.

Refusals are :class:`UnsafeFileError` (a ``ValueError``) and name the file, the refused globals and what to do.
A file that is not a readable torch file at all (empty, truncated, corrupt, another format) is a
:class:`DamagedFileError` (a ``ValueError`` too) that says so: nothing in it was refused, it has to be re-downloaded
or re-saved.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import functools
import io
import os
import pickle
import pickletools
import re
import struct
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "UNSAFE_HINT",
    "DamagedFileError",
    "UnsafeFileError",
    "load_pickle_file",
    "load_torch_file",
    "load_torchscript_tensors",
    "numpy_allowlist",
    "pickle_globals",
]

UNSAFE_HINT = (
    "only tensors, plain containers, numbers, strings and numpy arrays are read (the allowlist of ovcore.safe_load), "
    "because any other pickled object could run code while loading. If you trust the file, re-save its tensors as "
    "a plain state dict (torch.save(model.state_dict(), path)) or as .safetensors, and load that."
)


class UnsafeFileError(ValueError):
    """A file whose pickle names a callable or class outside the allowlist (reading it could run code)."""


class DamagedFileError(ValueError):
    """A file that is not a readable torch file: empty, truncated, corrupt or of another format.

    ``__cause__`` holds the reader's original exception.
    """


# Python 2 pickles name these modules by their old names.
_PY2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}


@functools.lru_cache(maxsize=1)
def numpy_allowlist() -> dict[str, Any]:
    """The numpy globals a pickled array, scalar or dtype needs, and nothing else: ``{full name: object}``.

    Both spellings of numpy's core module are listed (``numpy.core`` in files written with numpy 1,
    ``numpy._core`` with numpy 2). Names that are never pickled by reference but whose instances are rebuilt (the
    dtype classes of ``numpy.dtypes``) are listed too, so torch's unpickler may set their state.
    """
    import numpy as np

    core = getattr(np, "_core", None) or np.core  # numpy 2 renamed numpy.core
    out: dict[str, Any] = {"numpy.ndarray": np.ndarray, "numpy.dtype": np.dtype}
    helpers = {"multiarray": ("_reconstruct", "scalar"), "numeric": ("_frombuffer",)}
    for module, names in helpers.items():
        for name in names:
            obj = getattr(getattr(core, module), name)
            out[f"numpy.core.{module}.{name}"] = obj
            out[f"numpy._core.{module}.{name}"] = obj
    for name, obj in vars(getattr(np, "dtypes", object)).items():
        if isinstance(obj, type) and issubclass(obj, np.dtype):
            out[f"numpy.dtypes.{name}"] = obj
    for obj in {type(np.dtype(code)) for code in "?bhilqBHILQefdgFDGSUVOMm"}:  # numpy < 1.25 has no numpy.dtypes
        out.setdefault(f"numpy.dtypes.{obj.__name__}", obj)
    return out


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for bytes, limited to that use."""
    if not isinstance(text, str) or encoding.lower().replace("-", "") != "latin1":
        raise pickle.UnpicklingError(f"_codecs.encode({type(text).__name__}, {encoding!r}) is not allowed")
    return text.encode("latin1")


@functools.lru_cache(maxsize=1)
def _plain_pickle_allowlist() -> dict[str, Any]:
    out: dict[str, Any] = {f"builtins.{t.__name__}": t for t in (set, frozenset, complex, bytes, bytearray, slice)}
    out["collections.OrderedDict"] = collections.OrderedDict
    out["_codecs.encode"] = _latin1_encode
    out.update(numpy_allowlist())
    return out


def _display(path: Path) -> str:
    return repr(str(path))


def _refusal(path: Path, what: str, detail: str) -> UnsafeFileError:
    return UnsafeFileError(f"refusing to load {what} {_display(path)}: {detail}; {UNSAFE_HINT}")


def _damaged(path: Path, what: str, err: BaseException) -> DamagedFileError:
    return DamagedFileError(
        f"{what} {_display(path)} is not a readable torch file (truncated or corrupt?): re-download or re-save it "
        f"({_short_reason(err)})"
    )


def _short_reason(err: BaseException) -> str:
    """The first sentence of the reader's message, never torch's advice to switch the weights-only mode off."""
    text = str(err).strip()
    if isinstance(err, EOFError) or not text:
        return "the file is empty or ends early"
    if isinstance(err, pickle.UnpicklingError):
        return f"unreadable pickle data: {_weights_only_reason(err)}"
    kind = type(err)
    name = kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__name__}"
    first = text.splitlines()[0].split(". ", 1)[0]
    return f"{name}: {first[:160]}"


def _require_file(path: str | os.PathLike, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {_display(path)}")
    return path


# ---------------------------------------------------------------------------------------------- plain pickles


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals of :func:`_plain_pickle_allowlist`; persistent ids are refused."""

    def find_class(self, module: str, name: str) -> Any:
        full = f"{_PY2_MODULES.get(module, module)}.{name}"
        allowed = _plain_pickle_allowlist()
        if full not in allowed:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")
        return allowed[full]

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not allowed in a plain pickle")


def load_pickle_file(path: str | os.PathLike, *, what: str = "pickle file") -> Any:
    """Unpickle ``path`` admitting builtin containers and scalars and numpy arrays only.

    Python 2 pickles are read with ``encoding="latin1"`` (numpy's advice for their arrays).

    Args:
        path: the pickle file.
        what: what the file is, for messages (e.g. ``"ADE20K index"``).

    Returns:
        The unpickled object.

    Raises:
        FileNotFoundError: no such file.
        UnsafeFileError: the pickle names any other global (a ``ValueError``; the message names the file).
        ValueError: the pickle is corrupt.
    """
    path = _require_file(path, what)
    try:
        with open(path, "rb") as f:
            return _RestrictedUnpickler(f, encoding="latin1").load()
    except pickle.UnpicklingError as err:
        raise _refusal(path, what, str(err)) from err
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as err:
        raise ValueError(f"could not read {what} {_display(path)}: {type(err).__name__}: {err}") from err


# ---------------------------------------------------------------------------------------------- torch files


def pickle_globals(data: bytes) -> set[str]:
    """The ``module.name`` of every GLOBAL opcode in a pickle stream, read without unpickling it.

    Raises:
        ValueError: the stream is malformed.
    """
    found = set()
    for opcode, arg, _ in pickletools.genops(io.BytesIO(data)):
        if opcode.name in ("GLOBAL", "INST"):
            module, name = str(arg).split(" ", 1)
            found.add(f"{_PY2_MODULES.get(module, module)}.{name}")
    return found


def _archive_pickles(path: Path) -> Iterator[bytes]:
    """Every pickle a ``torch.save`` zip archive would unpickle (``data.pkl``; torch reads no other)."""
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():  # by entry, not by name: a duplicated name must not hide an entry
            if info.filename == "data.pkl" or info.filename.endswith("/data.pkl"):
                yield archive.read(info)


@functools.lru_cache(maxsize=1)
def _torch_allowlist_names() -> frozenset[str]:
    """torch's built-in ``weights_only`` allowlist (tensors, storages, dtypes), without process-wide additions."""
    import torch

    unpickler = getattr(torch, "_weights_only_unpickler", None)
    default = getattr(unpickler, "_get_allowed_globals", None)
    return frozenset(default()) if default is not None else frozenset()


def _check_archive_globals(path: Path, what: str) -> None:
    """Refuse a zip archive whose pickle names a global outside torch's tensor allowlist and ours."""
    if not _torch_allowlist_names():
        return  # this torch does not expose its allowlist; torch.load(weights_only=True) still enforces it
    allowed = _torch_allowlist_names() | set(numpy_allowlist())
    named: set[str] = set()
    try:
        for data in _archive_pickles(path):
            named |= pickle_globals(data)
    except (zipfile.BadZipFile, ValueError, EOFError, OSError) as err:
        raise _damaged(path, what, err) from err
    refused = sorted(named - allowed)
    if refused:
        raise _refusal(path, what, f"its pickle names {', '.join(refused)}")


@contextlib.contextmanager
def _numpy_admitted() -> Iterator[None]:
    import torch

    entries = [(obj, name) for name, obj in numpy_allowlist().items()]
    with torch.serialization.safe_globals(entries):
        yield


def load_torch_file(path: str | os.PathLike, *, map_location: Any = "cpu", what: str = "checkpoint") -> Any:
    """``torch.load(path, weights_only=True)`` that also reads numpy arrays, and nothing else that runs code.

    Args:
        path: a ``torch.save`` file (zip archive or legacy format).
        map_location: as for ``torch.load``.
        what: what the file is, for messages (e.g. ``"SED checkpoint"``).

    Returns:
        The loaded object (tensors, builtin containers and scalars, numpy arrays).

    Raises:
        FileNotFoundError: no such file.
        UnsafeFileError: the file's pickle names a global outside the allowlist (a ``ValueError``; the message names
            the file, the globals and what to do).
        DamagedFileError: the file is not a readable torch file (empty, truncated, corrupt, another format; a
            ``ValueError`` naming the file and saying to re-download or re-save it).
    """
    import torch

    path = _require_file(path, what)
    if zipfile.is_zipfile(path):
        _check_archive_globals(path, what)
    try:
        with _numpy_admitted():
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if _names_a_global(err) and _legacy_pickles_parse(path):
            raise _refusal(path, what, _weights_only_reason(err)) from err
        raise _damaged(path, what, err) from err  # e.g. a file cut inside a global's name reads as a refusal
    except _READ_ERRORS as err:
        if _is_environment_error(err):
            raise
        raise _damaged(path, what, err) from err


# What torch.load raises for data that is not a torch file (empty, cut short, random bytes, another format): the
# legacy reader unpickles a header and seeks to storages, the zip reader reports a broken archive, each its own way.
_READ_ERRORS: tuple[type[BaseException], ...] = (
    EOFError, RuntimeError, OSError, KeyError, IndexError, TypeError, AttributeError, ValueError, OverflowError,
    struct.error, zipfile.BadZipFile, UnicodeDecodeError,
)
_MISSING_OR_DENIED = (errno.ENOENT, errno.EACCES, errno.EPERM, errno.EISDIR, errno.ENOMEM, errno.ENOSPC)


def _is_environment_error(err: BaseException) -> bool:
    """Errors of this machine, not of the file: no permission, out of memory, a device torch cannot use."""
    if isinstance(err, UnsafeFileError | DamagedFileError):
        return True  # already explained
    if isinstance(err, OSError) and not isinstance(err, zipfile.BadZipFile):
        return err.errno in _MISSING_OR_DENIED
    if isinstance(err, RuntimeError):
        text = str(err)
        return any(k in text for k in ("CUDA", "cuda", "device", "out of memory", "can't allocate")) and not any(
            k in text for k in ("PytorchStreamReader", "zip archive", "corrupt", "unexpected EOF")
        )
    return False


def _names_a_global(err: pickle.UnpicklingError) -> bool:
    """Whether torch refused a named global or class (an unsafe file), not an opcode it cannot parse (damage)."""
    text = _weights_only_reason(err) + " " + str(err)
    return bool(re.search(r"GLOBAL|[Uu]nsupported (global|class)|not an allowed global|blocked", text))


def _legacy_pickles_parse(path: Path) -> bool:
    """Whether the pickles of a legacy ``torch.save`` file (magic, protocol, system info, object, storage keys) each
    run to their STOP opcode; a zip archive was checked entry by entry before."""
    if zipfile.is_zipfile(path):
        return True
    try:
        with open(path, "rb") as f:
            for _ in range(5):
                for _ in pickletools.genops(f):
                    pass
    except (ValueError, EOFError, KeyError, UnicodeDecodeError, struct.error):
        return False
    return True


def _weights_only_reason(err: pickle.UnpicklingError) -> str:
    """The line of torch's message that says what was refused (the rest advises turning weights-only off)."""
    marker = "WeightsUnpickler error:"
    lines = [line.strip() for line in str(err).splitlines()]
    for i, line in enumerate(lines):
        if marker in line:
            reason = line.split(marker, 1)[1].split(" Please use", 1)[0].strip()
            return reason or next((rest for rest in lines[i + 1 :] if rest), "unreadable pickle data")
    named = [line for line in lines if "GLOBAL" in line]
    return named[0] if named else "its pickle is not a plain torch.save of tensors"


# ---------------------------------------------------------------------------------------------- TorchScript archives
# OpenAI's original CLIP files are TorchScript archives. torch.jit.load would compile the archive's TorchScript and run
# its __setstate__ methods; the tensors are read here instead from the archive's pickle, with every TorchScript
# object replaced by an inert record, and the parameter / buffer names taken from the class declarations as text.

_SCRIPT_CLASS = re.compile(
    r"^class (\w+)\(Module\):\n\s+__parameters__ = \[([^\]]*)\]\n\s+__buffers__ = \[([^\]]*)\]", re.MULTILINE
)


class _ScriptObject:
    """The attributes of one pickled TorchScript object; none of its methods exist, so none can run."""

    qualname = ""

    def __setstate__(self, state: Any) -> None:
        self.attributes = state if isinstance(state, dict) else {}


def _keep_value(value: Any, *_: Any) -> Any:
    """TorchScript's list builders and type tags, which return their first argument."""
    return value


def _rebuild_script_tensor(storage: tuple[Any, Any], offset: int, size: Any, stride: Any, *_: Any) -> Any:
    import torch

    untyped, dtype = storage
    return torch.empty((0,), dtype=dtype).set_(untyped, offset, tuple(size), tuple(stride))


class _ScriptUnpickler(pickle.Unpickler):
    """Reads a TorchScript archive's ``data.pkl``: inert records, tensors, builtin containers; nothing else."""

    _HELPERS = {
        "collections.OrderedDict": collections.OrderedDict,
        "torch._utils._rebuild_tensor_v2": _rebuild_script_tensor,
        **{f"torch.jit._pickle.build_{k}list": _keep_value for k in ("int", "double", "bool", "tensor")},
        "torch.jit._pickle.restore_type_tag": _keep_value,
    }

    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str) -> None:
        super().__init__(io.BytesIO(data))
        self.archive, self.prefix = archive, prefix
        self.classes: dict[str, type[_ScriptObject]] = {}

    def find_class(self, module: str, name: str) -> Any:
        import torch

        full = f"{module}.{name}"
        if module == "__torch__" or module.startswith("__torch__."):
            if full not in self.classes:
                self.classes[full] = type(name, (_ScriptObject,), {"qualname": full})
            return self.classes[full]
        if full in self._HELPERS:
            return self._HELPERS[full]
        storage = getattr(torch, name, None) if module == "torch" and name.endswith("Storage") else None
        with warnings.catch_warnings():  # reading a legacy storage class's dtype warns that TypedStorage is deprecated
            warnings.simplefilter("ignore", UserWarning)
            dtype = getattr(storage, "dtype", None) if storage is not None else None
        if isinstance(dtype, torch.dtype):
            return dtype
        raise pickle.UnpicklingError(f"global {full} is not allowed")

    def persistent_load(self, pid: Any) -> Any:
        import torch

        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], torch.dtype)):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        raw = bytearray(self.archive.read(f"{self.prefix}data/{pid[2]}"))
        return torch.UntypedStorage.from_buffer(raw, dtype=torch.uint8) if raw else torch.UntypedStorage(0), pid[1]


def _script_schema(archive: zipfile.ZipFile, prefix: str) -> dict[str, tuple[str, ...]]:
    """``{class qualname: parameter and buffer names}`` parsed from the archive's code files (never compiled)."""
    out = {}
    code = f"{prefix}code/"
    for name in archive.namelist():
        if name.startswith(code) and name.endswith(".py"):
            module = name[len(code) : -3].replace("/", ".")
            for cls, params, buffers in _SCRIPT_CLASS.findall(archive.read(name).decode("utf-8", "replace")):
                out[f"{module}.{cls}"] = tuple(re.findall(r'"([^"]+)"', params + buffers))
    return out


def _collect_tensors(obj: _ScriptObject, schema: dict[str, tuple[str, ...]], prefix: str, out: dict[str, Any]) -> None:
    import torch

    attributes = getattr(obj, "attributes", {})
    for name in schema.get(obj.qualname, ()):
        if isinstance(attributes.get(name), torch.Tensor):
            out[prefix + name] = attributes[name]
    for name, value in attributes.items():
        if isinstance(value, _ScriptObject):
            _collect_tensors(value, schema, f"{prefix}{name}.", out)


def load_torchscript_tensors(path: str | os.PathLike, *, what: str = "checkpoint") -> dict[str, Any]:
    """The parameters and buffers of a TorchScript archive (``module.state_dict()``), without running its code.

    Args:
        path: a ``torch.jit.save`` archive (e.g. OpenAI's original ``ViT-B-16.pt``).
        what: what the file is, for messages.

    Returns:
        ``{dotted name: tensor}`` on CPU.

    Raises:
        FileNotFoundError: no such file.
        UnsafeFileError: the archive's pickle names anything but TorchScript records, tensors and containers.
        ValueError: not a TorchScript archive, or corrupt.
    """
    path = _require_file(path, what)
    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
            if len(pickles) != 1:
                raise ValueError("no data.pkl at the top of the archive")
            prefix = pickles[0][: -len("data.pkl")]
            root = _ScriptUnpickler(archive.read(pickles[0]), archive, prefix).load()
            schema = _script_schema(archive, prefix)
    except pickle.UnpicklingError as err:
        raise _refusal(path, what, str(err)) from err
    except (zipfile.BadZipFile, KeyError, ValueError, EOFError, TypeError, RuntimeError, AttributeError) as err:
        raise ValueError(f"could not read TorchScript {what} {_display(path)}: {type(err).__name__}: {err}") from err
    if not isinstance(root, _ScriptObject):
        raise ValueError(f"could not read TorchScript {what} {_display(path)}: its root is not a module")
    out: dict[str, Any] = {}
    _collect_tensors(root, schema, "", out)
    return out

"""The method contract (``ovcore.method``), checked for every installed method.

Parametrized over ``ovcore.method.list_methods()``: a package that publishes a ``MethodSpec`` under the
``ovcore.methods`` entry-point group is in this suite without any edit here. Each method's ``small_preset`` is built
once (random weights, CPU) and must: train on a batch when ``trainable`` (else raise ``RuntimeError``), predict an
``ovcore.method.Prediction`` for a new vocabulary from every accepted image type, score the demo benchmark through
``ovcore.evaluate`` with the benchmark's protocol, and save / reload its weights with identical predictions.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from ovcore.benchmarks import get_benchmark
from ovcore.data import DemoSegmentation, collate_samples
from ovcore.method import (
    MethodSpec,
    Prediction,
    SegmentationModel,
    create_model,
    get_method,
    list_methods,
    predict_each,
)

METHODS = list_methods()
VOCABULARY = ["red circle", "blue square", "sky, blue sky"]
H, W = 64, 96


@pytest.fixture(autouse=True)
def _isolated_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Weights read from a file get an on-disk text-embedding cache: keep it out of the user's cache.
    monkeypatch.setenv("OVCORE_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Tiny models run many microsecond-sized ops: one intra-op thread never waits at OpenMP barriers when other
    # processes share the cores (the CLIP-ZSS tests' reason too).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module", params=METHODS)
def method(request: pytest.FixtureRequest) -> tuple[MethodSpec, Any]:
    spec = get_method(request.param)
    torch.manual_seed(0)
    return spec, create_model(spec.small_preset)


def _images(n: int = 2, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, H, W), dtype=torch.uint8, generator=gen)


def test_the_three_methods_are_installed() -> None:
    assert METHODS == ["clipzss", "maskclip", "sed"]


def test_spec_names_a_small_preset(method: tuple[MethodSpec, Any]) -> None:
    spec, model = method
    assert spec.small_preset in spec.list_presets("*")
    assert all(name.startswith(f"{spec.name}_") for name in spec.list_presets("*"))
    assert isinstance(model, SegmentationModel) and isinstance(model, torch.nn.Module)


def test_forward_trains_or_refuses(method: tuple[MethodSpec, Any]) -> None:
    spec, model = method
    data = DemoSegmentation(num_images=2, size=128, seed=0)
    batch = collate_samples([data[i] for i in range(len(data))])
    if not spec.trainable:
        with pytest.raises(RuntimeError):
            model(batch)
        return
    model.train()
    losses = model(batch)
    assert losses and all(v.dim() == 0 and math.isfinite(float(v.detach())) for v in losses.values())
    total = sum(losses.values())  # what the training engine optimises (and logs as "loss")
    assert total.requires_grad
    total.backward()
    model.zero_grad(set_to_none=True)
    model.eval()


def test_predict_with_a_new_vocabulary(method: tuple[MethodSpec, Any]) -> None:
    _, model = method
    out = model.predict(_images(), class_names=VOCABULARY)
    assert isinstance(out, Prediction) and len(out) == 2
    assert out.probs.shape == (2, len(VOCABULARY), H, W) and out.probs.is_floating_point()
    assert out.labels.shape == (2, H, W) and out.labels.dtype == torch.int64
    assert torch.equal(out.labels, out.probs.argmax(1))
    assert out.class_names == VOCABULARY == model.class_names
    assert len(out.stats) == 2 and all(isinstance(s, dict) for s in out.stats)
    model.set_vocabulary(["sky", "road"], templates=None)  # the one signature of every method
    assert model.predict(_images(1)).probs.shape == (1, 2, H, W)


def _accepted_forms(images: torch.Tensor, folder: Path) -> dict[str, Any]:
    """The same two images in every accepted input form."""
    hwc = [img.permute(1, 2, 0).numpy() for img in images]
    paths = []
    for i, array in enumerate(hwc):
        paths.append(folder / f"image_{i}.png")
        Image.fromarray(array).save(paths[-1])
    return {
        "uint8 batch": images,
        "float batch 0..255": images.float(),
        "list of (3, H, W) tensors": list(images),
        "PIL images": [Image.fromarray(a) for a in hwc],
        "RGBA PIL images": [Image.fromarray(a).convert("RGBA") for a in hwc],
        "uint8 arrays": hwc,
        "float arrays 0..1": [a.astype(np.float32) / 255.0 for a in hwc],
        "path strings": [str(p) for p in paths],
        "Paths": paths,
        "mixed list": [hwc[0], paths[1]],
    }


def test_predict_accepts_every_image_type(method: tuple[MethodSpec, Any], tmp_path: Path) -> None:
    _, model = method
    images = _images()
    model.set_vocabulary(VOCABULARY)
    reference = model.predict(images).probs
    for form, value in _accepted_forms(images, tmp_path).items():
        torch.testing.assert_close(model.predict(value).probs, reference, msg=lambda m, f=form: f"{f}: {m}")
    single = model.predict(Image.fromarray(images[1].permute(1, 2, 0).numpy()))
    torch.testing.assert_close(single.probs, reference[1:])
    grey = np.full((H, W), 128, dtype=np.uint8)
    assert model.predict(grey).probs.shape == (1, len(VOCABULARY), H, W)


def test_images_of_different_sizes(method: tuple[MethodSpec, Any]) -> None:
    _, model = method
    small = torch.randint(0, 256, (3, 48, 64), dtype=torch.uint8)
    with pytest.raises(ValueError, match="different sizes.*predict_each"):
        model.predict([_images(1)[0], small])
    each = predict_each(model, [_images(1)[0], small], class_names=VOCABULARY)
    assert [p.probs.shape for p in each] == [(1, 3, H, W), (1, 3, 48, 64)]


def test_predict_rejects_other_inputs(method: tuple[MethodSpec, Any]) -> None:
    _, model = method
    for bad in (42, {"image": _images(1)}, [None]):
        with pytest.raises(TypeError, match="PIL image, a file path, a numpy array"):
            model.predict(bad)


def test_evaluates_the_demo_benchmark_with_its_protocol(method: tuple[MethodSpec, Any]) -> None:
    from ovcore.evaluate import evaluate

    _, model = method
    protocol = get_benchmark("demo").protocol()
    model.set_vocabulary(protocol.vocabulary)
    results = evaluate(
        lambda images: model.predict(images).probs,
        DemoSegmentation(num_images=2, size=64, seed=1, split="val"),
        num_classes=protocol.num_classes,
        class_names=protocol.score_names,
        batch_size=2,
        warmup=0,
        progress=False,
        pred_remap=protocol.pred_remap,
        ignore_index=protocol.ignore_index,
    )
    assert results["num_images"] == 2 and results["num_classes"] == len(protocol.score_names)
    assert 0.0 <= results["pAcc"] <= 100.0


def test_save_and_reload_give_identical_predictions(method: tuple[MethodSpec, Any], tmp_path: Path) -> None:
    spec, model = method
    model.set_vocabulary(VOCABULARY)
    images = _images()
    expected = model.predict(images)
    path = tmp_path / "weights.pt"
    spec.save_model(model, path)
    reloaded = spec.create(spec.small_preset, checkpoint=str(path))
    assert isinstance(reloaded, SegmentationModel)
    got = reloaded.predict(images, class_names=VOCABULARY)
    torch.testing.assert_close(got.probs, expected.probs)
    assert torch.equal(got.labels, expected.labels) and got.class_names == VOCABULARY

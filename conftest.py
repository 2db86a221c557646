"""Root pytest configuration shared by tests/ and benchmarks/.

Environment variables are set at import time, before any test module imports torch, open_clip or triton:
* ``HF_HUB_OFFLINE=1`` so a missing pretrained tag fails at once instead of retrying the hub for ~46 s;
* ``TRITON_INTERPRET=1`` when no CUDA device is present, because the interpreter must be on before the first
  ``@triton.jit`` function is defined.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from hypothesis import HealthCheck, settings  # noqa: E402

# Bounded profiles: "ci" keeps the whole suite inside the CI budget on 2 cores, "dev" explores more.
settings.register_profile(
    "ci",
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("dev", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--benchmark",
        action="store_true",
        default=False,
        help="run the benchmarks under benchmarks/ (skipped otherwise)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    run_benchmarks = config.getoption("--benchmark")
    skip_bench = pytest.mark.skip(reason="benchmark: run with `pytest benchmarks/ --benchmark`")
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    has_cuda = torch.cuda.is_available()
    for item in items:
        in_benchmarks = "benchmarks" in item.path.parts
        if in_benchmarks and not run_benchmarks:
            item.add_marker(skip_bench)
        if item.get_closest_marker("gpu") and not has_cuda:
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True)
def _seed_everything() -> None:
    """Every test starts from the same RNG state, so failures reproduce."""
    torch.manual_seed(0)

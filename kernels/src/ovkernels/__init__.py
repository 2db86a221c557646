"""ovkernels: Triton kernels for the SED decoder, each with a pure PyTorch reference.

* :func:`depthwise_conv2d`: large-kernel (<= 13) depthwise conv of the FAM spatial fusion (ConvNeXt block).
* :func:`linear_attention`: multi-head Katharopoulos linear attention over the class axis (FAM class fusion).
* :func:`topk_category_mask`, :func:`compact_categories`, :func:`gather_categories`: per-image category early
  rejection (SED paper Sec. 3.3) that works for batches.

Every public function runs Triton on CUDA tensors and its ``reference_<name>`` elsewhere; set
``OVKERNELS_FORCE_REFERENCE=1`` to always use the references, or pass ``backend="triton"`` / ``"reference"``.
"""

from ovkernels.depthwise_conv import depthwise_conv2d, reference_depthwise_conv2d
from ovkernels.linear_attention import linear_attention, reference_linear_attention
from ovkernels.topk_gather import (
    compact_categories,
    gather_categories,
    reference_compact_categories,
    reference_gather_categories,
    reference_topk_category_mask,
    topk_category_mask,
)
from ovkernels.utils import HAS_TRITON, use_triton

__all__ = [
    "HAS_TRITON",
    "compact_categories",
    "depthwise_conv2d",
    "gather_categories",
    "linear_attention",
    "reference_compact_categories",
    "reference_depthwise_conv2d",
    "reference_gather_categories",
    "reference_linear_attention",
    "reference_topk_category_mask",
    "topk_category_mask",
    "use_triton",
]

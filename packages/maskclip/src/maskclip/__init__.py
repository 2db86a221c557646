"""MaskCLIP (Zhou et al., ECCV 2022, "Extract Free Dense Labels from CLIP"): training-free dense CLIP segmentation.

Quick start::

    import maskclip
    model = maskclip.create_maskclip("maskclip_vit_b16")      # open_clip ViT-B-16 / openai from the hub cache
    out = model.predict(images_uint8, class_names=["cat", "grass, lawn"])
    out.probs, out.labels

    maskclip.evaluate(model, "pascal_context_59", root="datasets")   # mIoU with ovcore.evaluate

See ``maskclip.list_presets()`` and the package README for presets, the reading of the paper and published figures.
"""

from maskclip._registry import create_maskclip, is_preset, list_presets
from maskclip.config import MaskCLIPConfig, load_config
from maskclip.evaluation import evaluate
from maskclip.model import MaskCLIP, rescale_size, window_boxes

__all__ = [
    "MaskCLIP",
    "MaskCLIPConfig",
    "create_maskclip",
    "evaluate",
    "is_preset",
    "list_presets",
    "load_config",
    "rescale_size",
    "window_boxes",
]

"""MaskCLIP (Zhou et al., ECCV 2022, "Extract Free Dense Labels from CLIP"): training-free dense CLIP segmentation.

Quick start::

    import maskclip
    model = maskclip.create_maskclip("maskclip_vit_b16")      # open_clip ViT-B-16 / openai from the hub cache
    out = model.predict(images_uint8, class_names=["cat", "grass, lawn"])
    out.probs, out.labels

    maskclip.evaluate(model, "pascal_context_59", root="datasets")   # mIoU with ovcore.evaluate

See ``maskclip.list_presets()`` and the package README for presets, the reading of the paper and published figures.
"""

from ovcore.lazy import lazy_exports

_EXPORTS = {
    "MaskCLIP": "maskclip.model",
    "MaskCLIPConfig": "maskclip.config",
    "create_maskclip": "maskclip._registry",
    "evaluate": "maskclip.evaluation",
    "is_preset": "maskclip._registry",
    "get_preset_config": "maskclip._registry",
    "register_maskclip": "maskclip._registry",
    "list_presets": "maskclip._registry",
    "load_config": "maskclip.config",
    "rescale_size": "maskclip.model",
    "window_boxes": "maskclip.model",
}

__all__ = list(_EXPORTS)
# Names are imported on first use: `import maskclip` (and the maskclip commands' --help) stays free of torch.
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

"""SED: a simple encoder-decoder for open-vocabulary semantic segmentation (CVPR 2024), reimplemented.

Quick start::

    import sed
    model = sed.create_sed("sed_convnext_b_768")          # open_clip weights from the local hub cache
    out = model.predict(images_uint8, class_names=["cat", "grass, lawn"], k=8)
    out.probs, out.labels, [s["kept"] for s in out.stats]     # an ovcore.method.Prediction

See `sed.list_presets()` and the package README for presets, official checkpoints and differences from the
official code.
"""

from ovcore.lazy import lazy_exports

_EXPORTS = {
    "create_sed": "sed._registry",
    "is_preset": "sed._registry",
    "list_presets": "sed._registry",
    "get_preset_config": "sed._registry",
    "register_sed": "sed._registry",
    "scatter_probabilities": "sed.cer",
    "select_categories": "sed.cer",
    "SEDConfig": "sed.config",
    "load_config": "sed.config",
    "convert_official_checkpoint": "sed.convert",
    "load_sed_checkpoint": "sed.convert",
    "read_checkpoint": "sed.convert",
    "Aggregator": "sed.decoder",
    "fold_up_into_conv": "sed.decoder",
    "SEDEncoder": "sed.encoder",
    "sed_bce_loss": "sed.losses",
    "LOSS_NAMES": "sed.model",
    "SED": "sed.model",
}

__all__ = list(_EXPORTS)
# Names are imported on first use: `import sed` (and every sed command's --help) stays free of torch.
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

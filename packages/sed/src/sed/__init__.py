"""SED: a simple encoder-decoder for open-vocabulary semantic segmentation (CVPR 2024), reimplemented.

Quick start::

    import sed
    model = sed.create_sed("sed_convnext_b_768")          # open_clip weights from the local hub cache
    out = model.predict(images_uint8, class_names=["cat", "grass, lawn"], k=8)
    out["probs"], out["labels"], out["stats"]["kept"]

See `sed.list_presets()` and the package README for presets, official checkpoints and differences from the
official code.
"""

from sed._registry import create_sed, is_preset, list_presets, register_sed
from sed.cer import scatter_probabilities, select_categories
from sed.config import SEDConfig, load_config
from sed.convert import convert_official_checkpoint, load_sed_checkpoint, read_checkpoint
from sed.decoder import Aggregator, fold_up_into_conv
from sed.encoder import SEDEncoder
from sed.losses import sed_bce_loss
from sed.model import LOSS_NAMES, SED

__all__ = [
    "SED",
    "SEDConfig",
    "SEDEncoder",
    "Aggregator",
    "LOSS_NAMES",
    "create_sed",
    "list_presets",
    "register_sed",
    "is_preset",
    "load_config",
    "convert_official_checkpoint",
    "load_sed_checkpoint",
    "read_checkpoint",
    "sed_bce_loss",
    "select_categories",
    "scatter_probabilities",
    "fold_up_into_conv",
]

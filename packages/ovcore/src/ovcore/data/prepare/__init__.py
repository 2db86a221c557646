"""Conversion of the official raw downloads into the prepared layouts read by ``build_dataset``.

Each ``prepare_<dataset>(root, ...)`` is idempotent (existing outputs are skipped unless ``overwrite``), shows
tqdm progress, can use worker processes and returns a :class:`PrepareReport`. The command line wraps them as
``ovcore prepare <dataset>``.
"""

from ovcore.data.prepare._common import PrepareReport
from ovcore.data.prepare.ade20k import prepare_ade20k_150, prepare_ade20k_847
from ovcore.data.prepare.coco_stuff import prepare_coco_stuff
from ovcore.data.prepare.pascal_context import prepare_pascal_context_59, prepare_pascal_context_459
from ovcore.data.prepare.voc import prepare_voc

# Sub-command name -> function (the names of ``ovcore prepare <name>``).
PREPARERS = {
    "coco_stuff": prepare_coco_stuff,
    "ade20k_150": prepare_ade20k_150,
    "ade20k_847": prepare_ade20k_847,
    "pascal_context_59": prepare_pascal_context_59,
    "pascal_context_459": prepare_pascal_context_459,
    "voc": prepare_voc,
}

__all__ = [
    "PREPARERS",
    "PrepareReport",
    "prepare_coco_stuff",
    "prepare_ade20k_150",
    "prepare_ade20k_847",
    "prepare_pascal_context_59",
    "prepare_pascal_context_459",
    "prepare_voc",
]

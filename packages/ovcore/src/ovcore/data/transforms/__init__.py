"""Training and test transforms of SED (detectron2) and ZegCLIP/CLIP-ZSS (mmseg), on sample dicts."""

from ovcore.data.transforms._base import SampleTransform
from ovcore.data.transforms.mmseg import MMSegTestTransform, MMSegTrainTransform
from ovcore.data.transforms.sed import SEDTestTransform, SEDTrainTransform

__all__ = ["SampleTransform", "SEDTrainTransform", "SEDTestTransform", "MMSegTrainTransform", "MMSegTestTransform"]

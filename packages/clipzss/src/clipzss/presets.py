"""CLIP-ZSS presets: the paper's students (Swin-B + UPerNet; ConvNeXt as the timm stand-in for the backbones timm
lacks, paper Sec. 4.3) and tiny CPU presets for tests and demos.

Each preset is a function returning a config (one family per file, timm style). The paper's SegFormer-B4 (MiT) and
SegNeXt-B (MSCAN) are not in timm; the SegFormer-style all-MLP head is available on any timm backbone instead.
"""

from __future__ import annotations

from ._registry import register_preset
from .config import (
    CLIPZSSConfig,
    PLMConfig,
    StudentConfig,
    SynthesizerConfig,
    TeacherConfig,
)

__all__: list[str] = []

DEMO_SEEN = [0, 1, 2, 3, 4, 5]
"""Seen ids of the demo vocabulary (ovcore.data.DEMO_CLASSES): "yellow triangle" and "striped texture" unseen."""


def _demo_names() -> list[str]:
    from ovcore.data import DEMO_CLASSES

    return list(DEMO_CLASSES)


def _paper(student: StudentConfig, **kwargs: object) -> CLIPZSSConfig:
    # Paper Sec. 4.2: 512x512 crops; the optimiser and schedule are clipzss-train's --recipe (README "Training recipe").
    return CLIPZSSConfig(student=student, teacher=TeacherConfig(), crop_size=512, **kwargs)  # type: ignore[arg-type]


def _tiny(student: StudentConfig) -> CLIPZSSConfig:
    return CLIPZSSConfig(
        student=student,
        teacher=TeacherConfig(model_name="ovcore-vit-tiny", pretrained=None, templates="single"),
        synthesizer=SynthesizerConfig(layers=1, heads=4),
        # 8x8 token grid at 128: windows 1 and 3 (strides 2 and 4) give 16 + 4 seeds instead of 4 + 1.
        plm=PLMConfig(windows=(1, 3)),
        crop_size=128,
        class_names=_demo_names(),
        seen_classes=list(DEMO_SEEN),
        test_mode="whole",
    )


# ------------------------------------------------------------------------------------------------ paper scale


@register_preset
def clipzss_swin_b_upernet() -> CLIPZSSConfig:
    """Swin-B (window 7, IN-1k, 512 input, drop-path 0.3) + UPerNet (512 ch), ViT-B/16 teacher: the paper's Swin-B row.

    mmseg's ``configs/swin`` swin-base UPerNet recipe; IN-22k weights: ``student__pretrained="ms_in22k"``.
    """
    return _paper(
        StudentConfig(
            backbone="swin_base_patch4_window7_224",
            pretrained="ms_in1k",
            backbone_kwargs={"img_size": 512, "drop_path_rate": 0.3},
            head="upernet",
            head_channels=512,
        )
    )


@register_preset
def clipzss_swin_b_segformer() -> CLIPZSSConfig:
    """Swin-B + SegFormer-style all-MLP head (256 ch, head lr x10 as mmseg's SegFormer recipe)."""
    return _paper(
        StudentConfig(
            backbone="swin_base_patch4_window7_224",
            pretrained="ms_in1k",
            backbone_kwargs={"img_size": 512, "drop_path_rate": 0.3},
            head="segformer",
            head_channels=256,
        ),
        head_lr_mult=10.0,
    )


@register_preset
def clipzss_convnext_b_upernet() -> CLIPZSSConfig:
    """ConvNeXt-B (IN-1k, drop-path 0.4) + UPerNet (512 ch), ViT-B/16 teacher (mmseg's ConvNeXt UPerNet recipe)."""
    return _paper(
        StudentConfig(
            backbone="convnext_base",
            pretrained="fb_in1k",
            backbone_kwargs={"drop_path_rate": 0.4},
            head="upernet",
            head_channels=512,
        )
    )


@register_preset
def clipzss_convnext_t_upernet() -> CLIPZSSConfig:
    """ConvNeXt-T (IN-1k, drop-path 0.3) + UPerNet (512 ch), ViT-B/16 teacher."""
    return _paper(
        StudentConfig(
            backbone="convnext_tiny",
            pretrained="fb_in1k",
            backbone_kwargs={"drop_path_rate": 0.3},
            head="upernet",
            head_channels=512,
        )
    )


@register_preset
def clipzss_convnext_t_segformer() -> CLIPZSSConfig:
    """ConvNeXt-T + SegFormer-style head (256 ch, head lr x10), ViT-B/16 teacher."""
    return _paper(
        StudentConfig(
            backbone="convnext_tiny",
            pretrained="fb_in1k",
            backbone_kwargs={"drop_path_rate": 0.3},
            head="segformer",
            head_channels=256,
        ),
        head_lr_mult=10.0,
    )


# ------------------------------------------------------------------------------------------------ tiny (CPU)


@register_preset
def clipzss_tiny_convnext_segformer() -> CLIPZSSConfig:
    """Random-init convnext_atto + SegFormer head (32 ch), tiny random ViT teacher (Dt=64), 128 crop, demo classes."""
    return _tiny(StudentConfig(backbone="convnext_atto", pretrained=False, head="segformer", head_channels=32))


@register_preset
def clipzss_tiny_resnet_upernet() -> CLIPZSSConfig:
    """Random-init resnet10t + UPerNet head (32 ch), tiny teacher, 128 crop, demo classes."""
    return _tiny(StudentConfig(backbone="resnet10t", pretrained=False, head="upernet", head_channels=32))


@register_preset
def clipzss_tiny_swin_upernet() -> CLIPZSSConfig:
    """Random-init 4-stage Swin (embed 32, depth 1 per stage, window 4) + UPerNet (32 ch), tiny teacher, 128 crop."""
    return _tiny(
        StudentConfig(
            backbone="swin_tiny_patch4_window7_224",
            pretrained=False,
            backbone_kwargs={
                "img_size": 128,
                "embed_dim": 32,
                "depths": (1, 1, 1, 1),
                "num_heads": (1, 2, 4, 8),
                "window_size": 4,
            },
            head="upernet",
            head_channels=32,
        )
    )

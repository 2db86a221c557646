"""MaskCLIP's console scripts: ``maskclip-predict`` and ``maskclip-eval`` (:mod:`maskclip.cli.commands`), the generic
commands of ``ovcore.cmd`` for a training-free method (``--checkpoint`` is the CLIP weights file)."""

"""Command-line entry points of CLIP-ZSS: ``clipzss-train`` (:mod:`clipzss.cli.train`), ``clipzss-eval``
(:mod:`clipzss.cli.eval`) and ``clipzss-predict`` (:mod:`clipzss.cli.predict`).

They share the flags of every command in the workspace (``ovcore.cmd``: ``--data-root``, ``--output-dir``,
``--preset``, ``--checkpoint``, ``--vocabulary``, ...) and its error convention; ``--help`` lists every option and
answers without importing torch. Training and evaluation run single-process or under ``torchrun``
(``torchrun --nproc_per_node N -m clipzss.cli.train ...``).
"""

"""Command-line entry points of CLIP-ZSS: ``clipzss-train`` (:mod:`clipzss.cli.train`) and ``clipzss-eval``
(:mod:`clipzss.cli.eval`), with the benchmarks of both protocols in :mod:`clipzss.cli.benchmarks`.

Both are tyro command lines over documented dataclasses (``--help`` lists every option) and run single-process or
under ``torchrun`` (``torchrun --nproc_per_node N -m clipzss.cli.train ...``).
"""

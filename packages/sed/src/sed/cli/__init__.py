"""SED command lines (console scripts of the ``sed`` package), built on the shared kit ``ovcore.cmd``.

* ``sed-demo``    -- the main job: train a small SED on the built-in demo scenes on CPU, evaluate it with and without
  category early rejection, write metrics and prediction overlays (:mod:`sed.cli.demo`).
* ``sed-train``   -- the paper's recipe (COCO-Stuff 171, 80k iterations, ...) or any preset on any dataset, single
  process or under ``torchrun`` (:mod:`sed.cli.train`).
* ``sed-eval``    -- the six benchmarks of the official ``eval.sh`` (or any registered dataset), mIoU and ms per image
  (:mod:`sed.cli.eval`, the generic ``ovcore.cmd.evaluate``).
* ``sed-predict`` -- label maps and overlays with a legend for images and a free vocabulary (:mod:`sed.cli.predict`,
  the generic ``ovcore.cmd.predict``).
* ``sed-convert`` -- official checkpoint conversion (:mod:`sed.cli.convert`, :mod:`sed.convert`).

Every option is a documented dataclass field parsed by ``tyro``; ``<command> --help`` lists them all and answers
without importing torch. SED's own pieces (weight sources, inference options) are in :mod:`sed.cli._common`.
"""

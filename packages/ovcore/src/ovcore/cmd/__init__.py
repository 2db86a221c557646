"""The command-line kit every console script is built on (README "Command line").

* :mod:`ovcore.cmd.errors`: the error convention (``prog: error: ...``, exit status 2) and option checks;
* :mod:`ovcore.cmd.log`: logging setup and console lines;
* :mod:`ovcore.cmd.options`: the shared flags (``--data-root``, ``--output-dir``, ``--preset``, ``--checkpoint``,
  ``--device``) and the deprecation of old spellings;
* :mod:`ovcore.cmd.vocabulary`: ``--vocabulary`` (comma list, file, or a dataset's class list by name);
* :mod:`ovcore.cmd.images`: recursive image collection, batches and a progress bar;
* :mod:`ovcore.cmd.tables`: result tables;
* :mod:`ovcore.cmd.model`, :mod:`ovcore.cmd.predict`, :mod:`ovcore.cmd.evaluate`: the generic ``predict`` and
  ``eval`` commands of any ``ovcore.method.MethodSpec``.

The option modules import no torch, so every command's ``--help`` answers at once; heavy imports happen inside the
run functions.
"""

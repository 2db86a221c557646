"""The command-line kit every console script is built on (README "Command-line conventions").

``ovcore.cmd.vocabulary`` parses ``--vocabulary``, ``ovcore.cmd.images`` turns files and folders into batches with a
progress bar, ``ovcore.cmd.tables`` prints result tables. Nothing here imports torch, so ``--help`` stays fast.
"""

"""``ovseg_app``: the Gradio web demo of the repository's segmentation methods (console script ``ovseg-app``).

``ovseg_app.logic`` holds the work in plain functions (input checks, model cache, ``segment``), ``ovseg_app.ui`` the
page, ``ovseg_app.cli`` the command. Importing this package imports neither torch nor gradio.
"""

__all__: list[str] = []

"""The Gradio page: inputs on the left, results on the right, one queued handler (``ovseg_app.logic`` does the work).

Every failure of a request ends up as one line in the status box: ``ValueError`` and ``RuntimeError`` carry
messages meant for the user; anything else is logged with its traceback on the server and named in one line.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from ovcore.cmd.errors import USER_ERRORS, describe_error
from ovseg_app.logic import (
    AppSettings,
    ModelCache,
    dataset_choices,
    legend_html,
    load_image,
    method_of,
    parse_vocabulary,
    resolve_device,
    segment,
    weights_note,
    write_samples,
)

__all__ = ["build_app", "launch", "run_request", "vocabulary_text"]

logger = logging.getLogger(__name__)

TITLE = "Open-vocabulary segmentation demo (SED, CLIP-ZSS, MaskCLIP)"
_NO_DATASET = "(type classes)"
_CER_MAX = 32


def vocabulary_text(dataset: str) -> str:
    """A dataset's class list as the vocabulary box writes it: commas between classes, ``|`` between synonyms."""
    from ovcore.data import get_class_names

    return ", ".join(name.replace(", ", "|") for name in get_class_names(dataset))


def _error_outputs(message: str) -> tuple[Any, str, str, str, str]:
    return None, legend_html([], 0), "", "", f"Error: {message}"


def run_request(
    cache: ModelCache,
    settings: AppSettings,
    image_path: str | None,
    vocabulary: str | None,
    preset: str,
    weights: str | None,
    cer_k: float | None,
) -> tuple[Any, str, str, str, str]:
    """One click of Segment: ``(overlay, legend HTML, kept classes per stage, latency, status)``.

    Never raises: a bad input or a failing model gives empty results and an ``"Error: ..."`` status line.
    """
    try:
        image = load_image(image_path, settings)
        names = parse_vocabulary(vocabulary, settings)
        result = segment(cache, image, names, preset, (weights or "").strip(), int(cer_k or 0))
    except USER_ERRORS as err:
        return _error_outputs(describe_error(err))
    except Exception as err:  # the page must never show a traceback; the server log keeps it
        logger.exception("request failed")
        return _error_outputs(f"{type(err).__name__}: {err} (details in the server log)")
    latency = f"{result.latency_ms:.0f} ms on {cache.device}"
    return result.overlay, legend_html(result.legend, result.num_classes), result.kept_text(), latency, result.status()


def _is_sed(preset: str) -> bool:
    try:
        return method_of(preset)[0] == "sed"
    except (ValueError, RuntimeError):
        return False


def _preset_choices(default: str) -> list[str]:
    from ovcore.method import list_presets

    presets = list_presets("*")
    return presets if default in presets else [default, *presets]


def _image_input(**kwargs: Any) -> Any:
    """A ``gr.Image`` upload that hands the handler the stored file's path without decoding it.

    ``gr.Image`` opens every upload with PIL before the handler runs, so a file that is not an image would end in
    gradio's own "could not preprocess" error; the app checks the file itself (``logic.load_image``) and answers in
    the status box instead. The instance's ``preprocess`` is replaced rather than subclassed, because gradio writes a
    ``.pyi`` stub next to the source file of every component subclass.
    """
    import gradio as gr

    image = gr.Image(type="filepath", **kwargs)
    decode = image.preprocess

    def preprocess(payload: Any) -> Any:
        if payload is not None and payload.path and not (payload.url or "").startswith("data:"):
            return payload.path
        return decode(payload)

    image.preprocess = preprocess
    return image


def _theme() -> Any:
    import gradio as gr

    # System fonts only: the default theme asks Google Fonts, which an offline machine cannot reach.
    return gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                             font_mono=["ui-monospace", "monospace"])


def build_app(settings: AppSettings, sample_dir: str | Path | None = None) -> Any:
    """The ``gr.Blocks`` page, queued (one request runs at a time; the rest wait in line).

    Args:
        settings: Limits and defaults.
        sample_dir: Where the sample scenes are written (default a fresh temporary folder).
    """
    import gradio as gr

    cache = ModelCache(resolve_device(settings.device), settings.cache_size)
    samples = write_samples(Path(sample_dir or tempfile.mkdtemp(prefix="ovseg_app_samples_")))
    note = weights_note(settings.preset, settings.weights)

    def handler(image_path: str | None, vocabulary: str, preset: str, weights: str, cer_k: float) -> tuple:
        return run_request(cache, settings, image_path, vocabulary, preset, weights, cer_k)

    with gr.Blocks(title="ovseg demo") as demo:
        gr.Markdown(f"## {TITLE}")
        gr.Markdown(note or "Pick a preset and weights, an image and a vocabulary, then press Segment.",
                    elem_id="weights-note")
        with gr.Row():
            with gr.Column():
                image = _image_input(label="Image", sources=["upload"], elem_id="input-image")
                gr.Examples(samples, inputs=image, label="Sample demo scenes")
                dataset = gr.Dropdown([_NO_DATASET, *dataset_choices()], value=_NO_DATASET,
                                      label="Dataset vocabulary", elem_id="dataset")
                vocabulary = gr.Textbox(vocabulary_text("demo"), label="Vocabulary: classes separated by commas, "
                                        "synonyms by |", lines=2, elem_id="vocabulary")
                preset = gr.Dropdown(_preset_choices(settings.preset), value=settings.preset, label="Method / preset",
                                     elem_id="preset")
                weights = gr.Textbox(settings.weights, label="Weights: checkpoint file, pretrained folder or "
                                     "hf-hub:org/repo (empty: the preset's own)", elem_id="weights")
                cer_k = gr.Slider(0, _CER_MAX, value=0, step=1, label="SED category early rejection k (0 = off)",
                                  visible=_is_sed(settings.preset), elem_id="cer-k")
                button = gr.Button("Segment", variant="primary", elem_id="segment")
            with gr.Column():
                status = gr.Textbox(label="Status", interactive=False, elem_id="status")
                overlay = gr.Image(label="Overlay", type="numpy", interactive=False, elem_id="overlay")
                legend = gr.HTML(legend_html([], 0), label="Legend", elem_id="legend")
                kept = gr.Textbox(label="Classes kept per CER stage", interactive=False, elem_id="kept")
                latency = gr.Textbox(label="Latency", interactive=False, elem_id="latency")

        dataset.change(lambda d: gr.update() if d == _NO_DATASET else vocabulary_text(d), dataset, vocabulary)
        preset.change(lambda p: gr.update(visible=_is_sed(p)), preset, cer_k)
        button.click(handler, [image, vocabulary, preset, weights, cer_k], [overlay, legend, kept, latency, status],
                     api_name="segment")
    return demo.queue(max_size=settings.queue_size, default_concurrency_limit=1)


def launch(demo: Any, host: str, port: int, *, share: bool = False, max_file_size: str = "20mb") -> None:
    """Serve the page (blocks until interrupted)."""
    demo.launch(server_name=host, server_port=port, share=share, show_error=True, max_file_size=max_file_size,
                ssr_mode=False, theme=_theme())


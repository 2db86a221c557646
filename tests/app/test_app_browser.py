"""The web demo in a real browser: the app runs in a subprocess on a free loopback port and a headless Chromium
(the Debian ``chromium`` + ``chromium-driver`` packages, driven by Selenium) uploads an image, types classes,
presses Segment and reads the page.

Skipped, with the reason, only where no Chromium or chromedriver is installed (``.ci/run`` installs them).
``OVSEG_APP_SCREENSHOT=docs/app.png`` saves a screenshot of the finished result page; ``OVSEG_APP_CHECKPOINT``
serves other sed_tiny weights than random ones (the README's screenshot uses the ``sed-demo`` checkpoint).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

WAIT_S = 60
CHECKPOINT = os.environ.get("OVSEG_APP_CHECKPOINT", "")
CLASSES = "sky, grass, water, sand, red circle, blue square, yellow triangle, striped texture"

_BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def _find_browser() -> tuple[str, str] | None:
    browser = next((p for p in map(shutil.which, _BROWSERS) if p), None)
    driver = shutil.which("chromedriver") or next(
        (p for p in ("/usr/lib/chromium/chromedriver", "/usr/bin/chromedriver") if Path(p).is_file()), None
    )
    return (browser, driver) if browser and driver else None


FOUND = _find_browser()
pytestmark = pytest.mark.skipif(
    FOUND is None,
    reason="no Chromium + chromedriver installed (apt-get install chromium chromium-driver; .ci/run does it)",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_server(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"ovseg-app exited with status {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"ovseg-app did not answer at {url} within {WAIT_S} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("app")
    port = _free_port()
    env = {
        **os.environ,
        "GRADIO_ANALYTICS_ENABLED": "False",
        "GRADIO_TEMP_DIR": str(tmp / "gradio"),
        "OVCORE_CACHE_DIR": str(tmp / "cache"),
        "HF_HUB_OFFLINE": "1",
    }
    log = tmp / "app.log"
    # sed_tiny with random weights: builds in a fraction of a second and runs SED's CER path.
    cmd = [sys.executable, "-m", "ovseg_app.cli", "--port", str(port), "--preset", "sed_tiny",
           "--checkpoint", str(Path(CHECKPOINT).resolve()) if CHECKPOINT else "",
           "--device", "cpu", "--max-image-side", "1024"]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp)
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_for_server(url, proc, log)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    assert FOUND is not None
    binary, driver_path = FOUND
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1100", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def fixture_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ovcore.data.demo import generate_demo_scene

    image, _ = generate_demo_scene(3, size=160, seed=0, split="val")
    path = tmp_path_factory.mktemp("images") / "scene.png"
    Image.fromarray(image).save(path)
    return path


def _open(driver: Any, url: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    WebDriverWait(driver, WAIT_S).until(ec.element_to_be_clickable((By.ID, "segment")))


def _fill(driver: Any, image: Path, classes: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    driver.find_element(By.CSS_SELECTOR, "#input-image input[type=file]").send_keys(str(image))
    # The upload is done when the preview image shows.
    WebDriverWait(driver, WAIT_S).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#input-image img"))
    box = driver.find_element(By.CSS_SELECTOR, "#vocabulary textarea")
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(Keys.DELETE)
    box.send_keys(classes)


def _set_cer_k(driver: Any, k: int) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    number = driver.find_element(By.CSS_SELECTOR, "#cer-k input[type=number]")
    number.send_keys(Keys.CONTROL, "a")
    number.send_keys(str(k), Keys.TAB)


def _submit_and_wait(driver: Any) -> str:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.find_element(By.ID, "segment").click()

    def status(d: Any) -> str | bool:
        value = d.find_element(By.CSS_SELECTOR, "#status textarea").get_attribute("value") or ""
        return value if value.startswith(("Done", "Error")) else False

    return WebDriverWait(driver, WAIT_S).until(status)


def _screenshot(driver: Any, path: Path) -> None:
    """The whole page, as a small palette PNG."""
    # Gradio scrolls inside its own container: the tallest of the page's boxes is the page's height.
    height = driver.execute_script(
        "return Math.max(...[...document.querySelectorAll('body, body *')].map(e => e.scrollHeight))"
    )
    driver.set_window_size(1400, min(int(height) + 160, 2400))
    driver.save_screenshot(str(path))
    with Image.open(path) as im:
        im.convert("RGB").quantize(colors=128, dither=Image.Dither.NONE).save(path, optimize=True)


def test_upload_type_classes_and_segment(app_url: str, browser: Any, fixture_png: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _open(browser, app_url)
    _fill(browser, fixture_png, CLASSES)
    _set_cer_k(browser, 4)
    status = _submit_and_wait(browser)
    assert status.startswith("Done: sed / sed_tiny, 8 classes"), status
    # The page says what these weights are.
    assert ("random-CLIP demo weights" if CHECKPOINT else "RANDOM weights") in status

    overlay = WebDriverWait(browser, WAIT_S).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "#overlay img") or False
    )[0]
    WebDriverWait(browser, WAIT_S).until(
        lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", overlay)
    )
    width, height = browser.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]", overlay)
    assert width > 0 and height > 0

    names = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#legend td.legend-name")]
    assert names and set(names) <= {n.strip() for n in CLASSES.split(",")}, names
    assert "%" in browser.find_element(By.ID, "legend").text
    assert browser.find_element(By.CSS_SELECTOR, "#latency textarea").get_attribute("value").endswith("ms on cpu")
    kept = browser.find_element(By.CSS_SELECTOR, "#kept textarea").get_attribute("value")
    assert kept.startswith("stage 1: ") and kept.count("of 8") == 3, kept

    shot = os.environ.get("OVSEG_APP_SCREENSHOT")
    if shot:
        _screenshot(browser, Path(shot))


def test_duplicate_vocabulary_shows_the_message(app_url: str, browser: Any, fixture_png: Path) -> None:
    from selenium.webdriver.common.by import By

    _open(browser, app_url)
    _fill(browser, fixture_png, "cat, dog, Cat")
    status = _submit_and_wait(browser)
    assert status.startswith("Error: vocabulary:") and "duplicate" in status, status
    assert "Traceback" not in browser.find_element(By.TAG_NAME, "body").text
    assert not browser.find_elements(By.CSS_SELECTOR, "#legend td.legend-name")


def test_a_file_that_is_not_an_image_shows_the_message(app_url: str, browser: Any, tmp_path: Path) -> None:
    # gr.Image decodes uploads before the handler runs; the app's upload hands over the file so its own check answers.
    fake = tmp_path / "notes.png"
    fake.write_text("not an image")
    _open(browser, app_url)
    _fill(browser, fake, "cat, dog")
    status = _submit_and_wait(browser)
    assert status.startswith("Error: image: 'notes.png' is not an image"), status

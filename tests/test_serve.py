"""``ddpm serve`` end to end in a real headless Chromium: the page loads, a sampling request streams
its denoising before the result, a bad request shows its error and the server keeps serving."""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from ddpm.errors import UserError
from ddpm.serve.app import restore_request, sample_request, sampleable_pretrained


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    cmd = [sys.executable, "-m", "ddpm", "serve", "--port", str(port)]
    process = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            if process.poll() is not None:
                pytest.fail(f"ddpm serve exited: {process.stdout.read()[-2000:]}")
            time.sleep(0.5)
    else:
        process.kill()
        pytest.fail("ddpm serve did not answer within 90 s")
    yield url
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture(scope="module")
def browser():
    options = Options()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.add_argument("--window-size=1300,1100")
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    yield driver
    driver.quit()


def _wait(condition, timeout=60.0, every=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = condition()
        except WebDriverException:  # the page is still being built
            value = None
        if value:
            return value
        time.sleep(every)
    return None


def test_the_page_serves_only_this_machine_by_default():
    from ddpm.cli.main import build_parser

    args = build_parser().parse_args(["serve"])
    assert args.host == "127.0.0.1"


def test_only_diffusion_models_are_offered_and_the_garments_first():
    names = sampleable_pretrained()
    assert names[0] == "fashion-mnist" and "faces64-autoencoder" not in names


def test_a_request_streams_its_denoising_then_its_result(server, browser):
    browser.get(server)
    assert _wait(lambda: "32×32" in browser.find_element(By.ID, "model-info").text), "model info not shown"
    steps = _wait(lambda: browser.find_element(By.CSS_SELECTOR, "#steps input"))
    steps.send_keys(Keys.CONTROL, "a")
    steps.send_keys("100")
    browser.find_element(By.ID, "generate").click()
    seen = []

    def finished():
        text = browser.find_element(By.ID, "status").text
        if text and (not seen or seen[-1] != text):
            seen.append(text)
        return text.startswith("done")

    assert _wait(finished, timeout=120), f"no result; statuses: {seen}"
    live = [s for s in seen if s.startswith("step")]
    assert len(live) >= 2, seen  # intermediate frames came before the final image
    assert seen.index(live[0]) < seen.index("done: 100 steps")
    result = browser.find_elements(By.CSS_SELECTOR, "#result img")
    assert result and result[0].get_attribute("src")
    links = browser.find_elements(By.CSS_SELECTOR, "#download a")  # the PNG to download
    assert any("result" in (a.get_attribute("href") or "") for a in links)


def test_a_bad_request_shows_its_error_and_the_server_carries_on(server, browser):
    browser.get(server)
    _wait(lambda: "32×32" in browser.find_element(By.ID, "model-info").text)
    box = browser.find_element(By.CSS_SELECTOR, "#model input")
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys("/no/such/model")
    box.send_keys(Keys.ENTER)
    browser.find_element(By.ID, "generate").click()

    def toast():
        return [
            e.text for e in browser.find_elements(By.CSS_SELECTOR, ".toast-body") if "not found" in e.text
        ]

    assert _wait(toast, timeout=30), "no error shown"
    # the same server still samples
    browser.get(server)
    _wait(lambda: "32×32" in browser.find_element(By.ID, "model-info").text)
    steps = browser.find_element(By.CSS_SELECTOR, "#steps input")
    steps.send_keys(Keys.CONTROL, "a")
    steps.send_keys("5")
    browser.find_element(By.ID, "generate").click()
    assert _wait(lambda: browser.find_element(By.ID, "status").text.startswith("done"), timeout=60)


def _tiny_checkpoint(tmp_path, config_name: str):
    from ddpm.checkpoints import write_checkpoint
    from ddpm.configuration import to_dict
    from ddpm.models import UNet
    from ddpm.pipelines.experiment import load_experiment_config

    config = load_experiment_config(config_name)
    model = UNet(config.model)
    return str(
        write_checkpoint(tmp_path / config_name, {"ema": model.state_dict()}, {"config": to_dict(config)})
    )


def test_restoring_an_upload_streams_like_sampling(tmp_path):
    from PIL import Image

    model = _tiny_checkpoint(tmp_path, "digits-sr-tiny")
    upload = Image.new("L", (8, 8), 128)
    events = list(restore_request(model, upload, None, 10, 0))
    frames = [e for e in events if e[2] is None]
    assert frames and events[-1][1].startswith("done")
    assert events[-1][2].size[0] >= 16 and events[-1][3].endswith(".png")


@pytest.mark.parametrize(
    "call, why",
    [
        (lambda m, g: list(restore_request(m["sr"], None, None, 10, 0)), "upload an image"),
        (lambda m, g: list(restore_request(g, None, None, 10, 0)), "restores nothing"),
        (lambda m, g: list(sample_request(m["sr"], "ancestral", 10, 0, 1, "", "", 1)), "Restore tab"),
        (lambda m, g: list(sample_request(g, "no-such", 10, 0, 1, "", "", 1)), "unknown sampler"),
        (lambda m, g: list(sample_request(g, "ancestral", 0, 0, 1, "", "", 1)), "steps must be"),
        (lambda m, g: list(sample_request(g, "ancestral", 10, 0, 1, "", "a cat", 1)), "no text prompt"),
        (lambda m, g: list(sample_request(g, "ancestral", 10, 0, 1, "3", "", 1)), "class labels"),
        (lambda m, g: list(sample_request("", "ancestral", 10, 0, 1, "", "", 1)), "choose a model"),
    ],
)
def test_bad_requests_are_one_line_errors(tmp_path, call, why):
    models = {"sr": _tiny_checkpoint(tmp_path, "digits-sr-tiny")}
    with pytest.raises(UserError, match=why):
        call(models, _tiny_checkpoint(tmp_path, "digits-tiny"))

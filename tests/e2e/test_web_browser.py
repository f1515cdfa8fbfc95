"""The dashboard in headless Chromium (Debian's chromium + chromium-driver, through selenium),
against `iss serve` started in a subprocess on a free loopback port: log in, open every page,
replay a parked message. Screenshots of every page go to tests/artifacts/web/ (or
$ISS_TEST_ARTIFACTS). The bus is RabbitMQ (a throwaway vhost), so the test process and the server
process see the same parking queue. Under CI=true a missing chromium fails the run."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from iss_plugin.services import parking
from tests.conftest import IN_CI
from tests.integration.bus.conftest import rabbit_vhost, session_vhost  # noqa: F401  (fixtures)

from .test_identity import PASSWORD
from .web_setup import prepare

pytestmark = pytest.mark.rabbitmq
PAGES = {
    "overview": "/",
    "destinations": "/destinations",
    "content-views": "/content-views",
    "repositories": "/repositories",
    "events": "/events",
    "transfers": "/transfers",
    "parked": "/parked",
    "audit": "/audit",
}
CHROME_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1366,900",
)


def artifacts() -> Path:
    where = Path(os.environ.get("ISS_TEST_ARTIFACTS") or Path(__file__).parents[1] / "artifacts") / "web"
    where.mkdir(parents=True, exist_ok=True)
    return where


def need_chromium() -> tuple[str, str]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium and driver:
        return chromium, driver
    message = "headless Chromium is missing: install the Debian packages chromium and chromium-driver"
    if IN_CI:
        pytest.fail(message + " (scripts/install-test-deps.sh) — CI requires it", pytrace=False)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(published_source, tmp_path, rabbit_vhost):  # noqa: F811
    site = prepare(published_source, tmp_path, bus_url=rabbit_vhost)
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "iss"), "--config", str(site.server.config), "serve", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, "iss serve did not answer within 30 s"
            time.sleep(0.2)
        yield site, url
    finally:
        proc.terminate()
        proc.wait(15)
        log.close()
        site.app.close()


@pytest.fixture
def browser(tmp_path):
    chromium, driver = need_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    b = webdriver.Chrome(service=Service(driver), options=options)
    b.set_page_load_timeout(30)
    b.implicitly_wait(10)  # a slow first start of Chromium on a busy machine
    try:
        yield b
    finally:
        b.quit()


def test_log_in_open_every_page_and_replay_a_parked_message(served, browser):
    from selenium.webdriver.common.by import By

    site, url = served
    shots = artifacts()
    browser.get(url + "/")
    assert "/login" in browser.current_url  # not logged in yet
    browser.save_screenshot(str(shots / "login.png"))
    browser.find_element(By.NAME, "login").send_keys("ada")
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "form.login button[type=submit]").click()
    assert browser.current_url.rstrip("/") == url, browser.page_source[:500]
    for name, path in PAGES.items():
        browser.get(url + path)
        assert "Log out" in browser.page_source, name
        assert browser.find_element(By.TAG_NAME, "h1").text, name
        browser.save_screenshot(str(shots / f"{name}.png"))
    # the XSS payloads are text on the page, never script
    assert browser.execute_script("return document.querySelectorAll('main script').length") == 0

    browser.get(url + "/parked")
    browser.find_element(By.CSS_SELECTOR, "button[name=replay]").click()
    assert "replayed" in browser.find_element(By.CLASS_NAME, "notice").text
    assert "Nothing parked." in browser.page_source
    browser.save_screenshot(str(shots / "parked-after-replay.png"))
    assert parking.list_parked(site.app) == []
    print(f"screenshots: {shots}")

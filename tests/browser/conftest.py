"""Browser tests: headless Chromium (Debian's ``chromium`` + ``chromium-driver``, installed by
``scripts/install``) driven by Selenium against a real ``outputlayer serve``.

One server and one browser per module keep a flow to a few seconds. Every wait polls a condition
with a generous deadline (``WebDriverWait``), never a sleep. Screenshots of each page are written
to ``docs/screenshots/``, which the README shows as pictures of the product.
"""

from __future__ import annotations

import base64
import contextlib
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from tests.serving import Server, running_server

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
# Generous: the machine may be loaded (load average 10 on 2 cores) while a page renders.
WAIT_SECONDS = 60  # holds on a loaded 2-core machine; a passing wait returns as soon as it can
DESKTOP = (1280, 860)

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None, reason="chromium and chromium-driver are not installed"
)


def start_browser(width: int = DESKTOP[0], height: int = DESKTOP[1]) -> WebDriver:
    """A fresh headless Chromium: its own profile, so no storage of any other browser is shared."""
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("chromium and chromium-driver are not installed")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # tests may run as root (CI containers), where Chromium's sandbox cannot start
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        f"--window-size={width},{height}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {"OUTPUTLAYER_FREE_UPLOADS": "100"}
    with running_server(tmp_path_factory.mktemp("browser-server"), env) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    driver = start_browser()
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def fresh_browser() -> Iterator[WebDriver]:
    """A second browser with nothing in it: what a person who was sent a link opens it with."""
    driver = start_browser()
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver: WebDriver, condition: Callable[[WebDriver], Any], seconds: float = WAIT_SECONDS) -> Any:
    """Poll ``condition`` until it is truthy; an element re-rendered between two polls is looked up again."""
    ignored = (NoSuchElementException, StaleElementReferenceException)
    return WebDriverWait(driver, seconds, poll_frequency=0.05, ignored_exceptions=ignored).until(condition)


def visible(driver: WebDriver, element_id: str) -> WebElement:
    """The element with this id, once it is displayed."""

    def shown(d: WebDriver) -> WebElement | bool:
        found = d.find_elements("id", element_id)
        return found[0] if found and found[0].is_displayed() else False

    element: WebElement = wait_for(driver, shown)
    return element


def screenshot(driver: WebDriver, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def screenshot_once_painted(driver: WebDriver, name: str, seconds: float = 10) -> None:
    """A screenshot of content the browser paints on its own schedule (its PDF viewer): poll until the
    picture has changed from the first capture and then held still; at the deadline, take it as it is."""
    first = previous = driver.get_screenshot_as_png()

    def settled(d: WebDriver) -> bool:
        nonlocal previous
        current = d.get_screenshot_as_png()
        done = current == previous and current != first
        previous = current
        return done

    with contextlib.suppress(TimeoutException):
        WebDriverWait(driver, seconds, poll_frequency=0.25).until(settled)
    screenshot(driver, name)


@dataclass
class Api:
    """The public REST API of the server under test, as an agent uses it (to arrange each scene)."""

    base_url: str
    key: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def upload(self, data: bytes, mime: str, label: str | None = None, **fields: Any) -> dict[str, Any]:
        body = {"mimeType": mime, "content": base64.b64encode(data).decode(), **fields}
        if label is not None:
            body["label"] = label
        headers = {**self.auth, "Idempotency-Key": uuid.uuid4().hex}
        response = httpx2.post(f"{self.base_url}/v1/outputs", json=body, headers=headers, timeout=30)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    def share(self, output_id: str) -> str:
        response = httpx2.post(f"{self.base_url}/v1/outputs/{output_id}/share", json={}, headers=self.auth, timeout=30)
        assert response.status_code == 200, response.text
        url: str = response.json()["shareUrl"]
        return url

    def balance(self) -> dict[str, Any]:
        response = httpx2.get(f"{self.base_url}/v1/credits/balance", headers=self.auth, timeout=30)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


def register(server: Server) -> Api:
    response = httpx2.post(f"{server.base_url}/v1/keys/register", json={}, timeout=30)
    assert response.status_code == 201, response.text
    return Api(server.base_url, response.json()["apiKey"])


def _tab_state(browser: WebDriver) -> str:
    """What the tab shows, for a failure message: its URL, title, load state and the start of its text."""
    with contextlib.suppress(Exception):
        state = browser.execute_script("return document.readyState")
        text = browser.execute_script("return document.body ? document.body.innerText.slice(0, 300) : ''")
        return f"url={browser.current_url!r} title={browser.title!r} readyState={state!r} text={text!r}"
    return "unreadable tab"


def sign_in(browser: WebDriver, api: Api) -> None:
    """Open the console and sign in with the key, as a person pasting it would."""
    browser.get(f"{api.base_url}/console")
    browser.execute_script("sessionStorage.clear()")
    browser.refresh()
    try:
        field = visible(browser, "api-key")
    except TimeoutException:
        # Seen twice on a machine at load average ~5: a fresh Chromium's first page never showed the form.
        # Opening the page again is what a person would do; a second failure reports what the tab shows.
        first = _tab_state(browser)
        browser.get(f"{api.base_url}/console")
        try:
            field = visible(browser, "api-key")
        except TimeoutException:
            raise AssertionError(
                f"the console never showed its sign-in form: {first} / {_tab_state(browser)}"
            ) from None
    field.send_keys(api.key)
    browser.find_element("id", "sign-in").click()
    visible(browser, "workspace")

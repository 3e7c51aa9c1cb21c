"""The console and the preview pages in a real browser: sign in, quota, listing with filters, paging and
thumbnails, previews of an image, a CSV, a PDF and agent-written HTML (whose script must not run), sharing,
opening the share link in a fresh browser without a key, deleting, and the 410 page after."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select

from tests.browser.conftest import (
    DESKTOP,
    Api,
    register,
    screenshot,
    screenshot_once_painted,
    sign_in,
    visible,
    wait_for,
)
from tests.browser.samples import HOSTILE_HTML, gradient_png, one_page_pdf, sales_csv
from tests.serving import Server

HOSTILE_LABEL = '<img src=x onerror="document.title=1"> notes.txt'
NOTES = 20  # with the artifacts below, more than one page of 20


@dataclass
class Scene:
    api: Api
    image: dict[str, Any]
    csv: dict[str, Any]
    html: dict[str, Any]
    pdf: dict[str, Any]
    hostile: dict[str, Any]
    deleted: dict[str, Any]
    total: int


@pytest.fixture(scope="module")
def scene(server: Server) -> Iterator[Scene]:
    """One account with the artifacts of every test in this module, oldest first."""
    api = register(server)
    for n in range(NOTES):
        api.upload(f"note {n}\n".encode(), "text/plain", f"note-{n:02}.txt")
    deleted = api.upload(b"gone", "text/plain", "draft.txt")
    response = httpx2.delete(f"{api.base_url}/v1/outputs/{deleted['outputId']}", headers=api.auth, timeout=30)
    assert response.status_code == 200
    hostile = api.upload(b"just text", "text/plain", HOSTILE_LABEL)
    pdf = api.upload(one_page_pdf(), "application/pdf", "invoice-2026-11.pdf")
    html = api.upload(HOSTILE_HTML, "text/html", "Quarterly report.html")
    csv = api.upload(sales_csv(), "text/csv", "sales-by-region.csv")
    image = api.upload(gradient_png(), "image/png", "Q3 revenue chart.png")
    yield Scene(api, image, csv, html, pdf, hostile, deleted, NOTES + 6)


def rows(browser: WebDriver) -> list[WebElement]:
    found: list[WebElement] = browser.find_elements("css selector", "#artifact-rows tr")
    return found


def row_of(browser: WebDriver, output: dict[str, Any]) -> WebElement:
    return browser.find_element("css selector", f'#artifact-rows tr[data-output-id="{output["outputId"]}"]')


def wait_rows(browser: WebDriver, count: int) -> list[WebElement]:
    wait_for(browser, lambda d: len(rows(d)) == count)
    return rows(browser)


def click_action(browser: WebDriver, output: dict[str, Any], action: str) -> None:
    row_of(browser, output).find_element("css selector", f'button[data-action="{action}"]').click()


def image_loaded(browser: WebDriver, element: WebElement) -> bool:
    return bool(browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", element))


@pytest.fixture
def console(browser: WebDriver, scene: Scene) -> WebDriver:
    """The console, signed in with the scene's key, showing its first page."""
    sign_in(browser, scene.api)
    wait_rows(browser, 20)
    return browser


def test_sign_in_shows_the_quota_and_the_newest_artifacts(browser: WebDriver, scene: Scene) -> None:
    browser.get(f"{scene.api.base_url}/console")
    browser.execute_script("sessionStorage.clear()")
    browser.refresh()
    visible(browser, "api-key")
    screenshot(browser, "console-sign-in")

    visible(browser, "api-key").send_keys("ol_live_" + "0" * 64)
    browser.find_element("id", "sign-in").click()
    assert visible(browser, "signin-error").text
    assert not browser.find_element("id", "workspace").is_displayed()

    sign_in(browser, scene.api)
    listed = wait_rows(browser, 20)
    assert listed[0].get_attribute("data-output-id") == scene.image["outputId"]
    balance = scene.api.balance()
    assert browser.find_element("id", "quota-free").text == str(balance["freeRemaining"])
    assert browser.find_element("id", "quota-credits").text == str(balance["creditsRemaining"])
    # The key lives in this tab's sessionStorage only: not in the URL, not in a cookie.
    assert browser.execute_script("return sessionStorage.getItem('outputlayer.apiKey')") == scene.api.key
    assert browser.get_cookies() == []
    assert scene.api.key not in browser.current_url
    thumbnail = row_of(browser, scene.image).find_element("css selector", ".thumb img")
    wait_for(browser, lambda d: image_loaded(d, thumbnail))
    screenshot(browser, "console")


def test_labels_are_shown_as_text_never_as_markup(console: WebDriver, scene: Scene) -> None:
    name = row_of(console, scene.hostile).find_element("css selector", ".name")
    assert name.text == HOSTILE_LABEL
    assert name.find_elements("css selector", "img") == []
    assert console.title == "Console · OutputLayer"


def test_filters_and_paging(console: WebDriver, scene: Scene) -> None:
    Select(console.find_element("id", "filter-type")).select_by_value("text/csv")
    listed = wait_rows(console, 1)
    assert listed[0].get_attribute("data-output-id") == scene.csv["outputId"]

    Select(console.find_element("id", "filter-type")).select_by_value("")
    Select(console.find_element("id", "filter-status")).select_by_value("deleted")
    listed = wait_rows(console, 1)
    assert listed[0].get_attribute("data-status") == "deleted"
    assert listed[0].find_elements("css selector", "button") == []

    Select(console.find_element("id", "filter-status")).select_by_value("")
    wait_rows(console, 20)
    console.find_element("id", "page-next").click()
    older = wait_rows(console, scene.total - 20)
    assert older[-1].find_element("css selector", ".name").text == "note-00.txt"
    assert not console.find_element("id", "page-next").is_enabled()
    console.find_element("id", "page-prev").click()
    assert wait_rows(console, 20)[0].get_attribute("data-output-id") == scene.image["outputId"]


def test_open_shows_the_image_preview_page(console: WebDriver, scene: Scene) -> None:
    console_window = console.current_window_handle
    click_action(console, scene.image, "open")
    wait_for(console, lambda d: len(d.window_handles) == 2)
    preview_window = next(handle for handle in console.window_handles if handle != console_window)
    console.switch_to.window(preview_window)
    try:
        image = visible(console, "image-preview")
        wait_for(console, lambda d: image_loaded(d, image))
        assert console.find_element("id", "artifact-label").text == "Q3 revenue chart.png"
        assert console.find_element("id", "sha256").text == scene.image["sha256"]
        assert console.find_element("id", "download").get_attribute("href").endswith("?download=1")
        screenshot(console, "preview-image")
    finally:
        console.close()
        console.switch_to.window(console_window)


def test_csv_and_pdf_previews(browser: WebDriver, scene: Scene) -> None:
    browser.get(scene.api.share(scene.csv["outputId"]))
    table = visible(browser, "csv-preview")
    assert len(table.find_elements("css selector", "tbody tr")) == 40
    headers = [cell.text for cell in table.find_elements("css selector", "th")]
    assert headers == ["region", "product", "units", "revenue_usd"]
    screenshot(browser, "preview-csv")

    browser.get(scene.api.share(scene.pdf["outputId"]))
    frame = visible(browser, "pdf-preview")
    browser.switch_to.frame(frame)
    try:
        # Shown by the browser's own viewer, inline: not turned into a download.
        wait_for(browser, lambda d: d.execute_script("return document.readyState") == "complete")
        assert browser.execute_script("return document.contentType") == "application/pdf"
    finally:
        browser.switch_to.default_content()
    screenshot_once_painted(browser, "preview-pdf")


def test_agent_written_html_is_shown_without_running_its_script(browser: WebDriver, scene: Scene) -> None:
    browser.get(scene.api.share(scene.html["outputId"]))
    frame = visible(browser, "html-preview")
    assert frame.get_attribute("sandbox") == ""
    browser.switch_to.frame(frame)
    try:
        marker = visible(browser, "marker")
        assert marker.text == "script did not run"
    finally:
        browser.switch_to.default_content()
    assert browser.title == "Quarterly report.html · OutputLayer"
    assert browser.find_element("tag name", "body").get_attribute("data-pwned") is None
    screenshot(browser, "preview-html")


def test_share_open_without_a_key_delete_then_the_410_page(
    console: WebDriver, fresh_browser: WebDriver, scene: Scene
) -> None:
    click_action(console, scene.csv, "share")
    link = visible(console, "share-url").get_attribute("value") or ""
    assert link.startswith(f"{scene.api.base_url}/s/")
    console.find_element("id", "share-copy").click()
    wait_for(console, lambda d: d.find_element("id", "share-copied").text)
    screenshot(console, "console-share")
    console.find_element("id", "share-close").click()

    fresh_browser.get(link)
    assert visible(fresh_browser, "artifact-label").text == "sales-by-region.csv"
    assert fresh_browser.execute_script("return sessionStorage.length") == 0
    assert fresh_browser.get_cookies() == []
    visible(fresh_browser, "csv-preview")
    screenshot(fresh_browser, "share-page")

    click_action(console, scene.csv, "delete")
    assert scene.csv["label"] in visible(console, "delete-name").text
    screenshot(console, "console-delete")
    console.find_element("id", "delete-confirm").click()
    wait_for(console, lambda d: row_of(d, scene.csv).get_attribute("data-status") == "deleted")

    fresh_browser.refresh()
    assert visible(fresh_browser, "problem-title").text == "This artifact was deleted"
    screenshot(fresh_browser, "gone-410")
    page = httpx2.get(link, headers={"Accept": "text/html"}, timeout=30)
    assert (page.status_code, page.headers["content-type"]) == (410, "text/html; charset=utf-8")


def test_the_preview_page_and_the_console_fit_a_phone(browser: WebDriver, scene: Scene) -> None:
    browser.set_window_size(390, 844)
    try:
        browser.get(scene.api.share(scene.image["outputId"]))
        image = visible(browser, "image-preview")
        wait_for(browser, lambda d: image_loaded(d, image))
        assert browser.execute_script("return document.documentElement.scrollWidth") <= 390
        download = browser.find_element("id", "download")
        assert download.rect["width"] > 300  # one full-width button on a phone
        screenshot(browser, "preview-mobile")
        sign_in(browser, scene.api)
        wait_rows(browser, 20)
        assert browser.execute_script("return document.documentElement.scrollWidth") <= 390
        screenshot(browser, "console-mobile")
    finally:
        browser.set_window_size(*DESKTOP)


def test_no_key_ever_reaches_the_server_log(server: Server, scene: Scene) -> None:
    """After every flow above (sign-in, listing, thumbnails, share, delete), the log names no key."""
    log = server.log_path.read_text("utf-8")
    assert "Uvicorn running" in log  # the server's own log, from its start on
    assert "ol_live_" not in log

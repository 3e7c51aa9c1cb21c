"""Uploading from the console by drag and drop, through an upload link (SPEC section 14): the console asks
``POST /v1/uploads`` with the key, then PUTs the file's bytes straight to the link with a progress bar."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx2
from selenium.webdriver.remote.webdriver import WebDriver

from tests.browser.conftest import register, screenshot, sign_in, visible, wait_for
from tests.browser.samples import gradient_png
from tests.serving import Server

# Builds a DataTransfer holding the file picked in a scratch <input type=file>, and fires the events a
# person's drag and drop fires on the drop zone (a WebDriver cannot drag files from the desktop).
DROP_FILE = """
const input = arguments[0];
const zone = document.getElementById('dropzone');
const transfer = new DataTransfer();
transfer.items.add(input.files[0]);
for (const type of ['dragenter', 'dragover', 'drop']) {
  zone.dispatchEvent(new DragEvent(type, {bubbles: true, cancelable: true, dataTransfer: transfer}));
}
input.remove();
"""
SCRATCH_INPUT = """
const input = document.createElement('input');
input.type = 'file';
input.id = 'scratch-file';
document.body.appendChild(input);
return input;
"""


def drop_file(browser: WebDriver, path: Path) -> None:
    scratch = browser.execute_script(SCRATCH_INPUT)
    scratch.send_keys(str(path))
    browser.execute_script(DROP_FILE, scratch)


def test_a_dropped_file_is_uploaded_through_an_upload_link_and_listed(
    browser: WebDriver, server: Server, tmp_path: Path
) -> None:
    api = register(server)
    data = gradient_png(1200, 800)
    path = tmp_path / "Customer map.png"
    path.write_bytes(data)
    before = api.balance()

    sign_in(browser, api)
    visible(browser, "list-empty")
    drop_file(browser, path)

    message = wait_for(browser, lambda d: d.find_element("id", "upload-message").text.startswith("Stored as out_"))
    assert message
    assert browser.find_element("id", "upload-percent").text == "100%"
    assert "done" in (browser.find_element("id", "upload-fill").get_attribute("class") or "")
    row = wait_for(browser, lambda d: d.find_elements("css selector", "#artifact-rows tr"))[0]
    assert row.find_element("css selector", ".name").text == "Customer map.png"
    assert row.get_attribute("data-status") == "ready"
    thumbnail = wait_for(browser, lambda d: row.find_elements("css selector", ".thumb img"))[0]
    wait_for(browser, lambda d: d.execute_script("return arguments[0].naturalWidth > 0", thumbnail))
    wait_for(browser, lambda d: d.find_element("id", "quota-free").text == str(before["freeRemaining"] - 1))
    screenshot(browser, "console-upload")

    # The bytes arrived intact, as the declared type, through the link (one output, one charge).
    listed = httpx2.get(f"{api.base_url}/v1/outputs", headers=api.auth, timeout=30).json()["outputs"]
    assert [(o["label"], o["mimeType"], o["sizeBytes"], o["sha256"]) for o in listed] == [
        ("Customer map.png", "image/png", len(data), hashlib.sha256(data).hexdigest())
    ]
    assert api.balance()["freeRemaining"] == before["freeRemaining"] - 1

"""The web console (/_ui) in a real headless Chromium (Debian's chromium and chromium-driver,
installed by `make browser`), driven by Selenium against a running `thingstash serve`.

Covers: browsing the folder tree, opening a thing (exact JSON, ttl counting down), creating,
editing with validation before sending, a live update from another client's write while
watching, deleting, and the layout on a phone-sized screen. Screenshots of each step go to
test-artifacts/console/.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from tests.support.servers import Served
from thingstash.core import keys
from thingstash.store import open_store

pytestmark = pytest.mark.slow

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--window-size=1200,900",
)
BIG = 2**70 + 1  # beyond a JavaScript number's exact range: must still show exactly


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


@pytest.fixture
def api(served: Served, redis_client: redis.Redis) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, timeout=10) as client:
        yield client


def wait(driver: WebDriver, condition, timeout: float = 15):  # type: ignore[no-untyped-def]
    # A live view re-renders as updates come: an element read as it is replaced is looked
    # for again at the next poll, not a failure.
    return WebDriverWait(
        driver,
        timeout,
        poll_frequency=0.1,
        ignored_exceptions=(StaleElementReferenceException,),
    ).until(condition)


def find(driver: WebDriver, css: str) -> WebElement:
    return wait(driver, lambda d: d.find_element(By.CSS_SELECTOR, css))


def text_of(driver: WebDriver, css: str) -> str:
    return driver.find_element(By.CSS_SELECTOR, css).text


def shot(driver: WebDriver, name: str) -> None:
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def put(api: httpx.Client, path: str, thing: dict, ttl: int | None = None) -> None:
    params = {"ttl": ttl} if ttl else None
    response = api.put("/" + path, content=json.dumps(thing), params=params)
    assert response.status_code in (200, 201), response.text


def test_console_browse_view_create_edit_watch_delete(
    browser: WebDriver, api: httpx.Client, served: Served
) -> None:
    put(api, "sensors/kitchen/temp", {"value": 21.5, "big": BIG}, ttl=300)
    put(api, "sensors/garden/rain", {"mm": 0})
    put(api, "notes/todo", {"text": "water the plants"})

    # Browse: the tree shows the top level; opening folders lists what is inside.
    browser.get(f"{served.url}/_ui")
    find(browser, '#tree li[data-path="sensors/"] > a').click()
    find(browser, '#tree li[data-path="sensors/kitchen/"] > a').click()
    assert find(browser, "#view .title").text in ("sensors/", "sensors/kitchen/")
    shot(browser, "01-browse")

    # View: the JSON exactly as stored, the ttl counting down.
    find(browser, '#tree li[data-path="sensors/kitchen/temp"] > a').click()
    wait(browser, lambda d: str(BIG) in text_of(d, "#view pre.json"))
    assert '"value": 21.5' in text_of(browser, "#view pre.json")
    first = int(find(browser, "#view .meta .ttl").text.split()[0])
    assert 0 < first <= 300
    wait(browser, lambda d: int(text_of(d, "#view .meta .ttl").split()[0]) < first)
    shot(browser, "02-thing-ttl-counting-down")

    # Create: a new thing in a folder, with a ttl.
    browser.get(f"{served.url}/_ui#/notes/")
    find(browser, '#view[data-kind="folder"] [data-act=new]').click()
    form = find(browser, "#view form.editor")
    form.find_element(By.NAME, "path").clear()
    form.find_element(By.NAME, "path").send_keys("notes/new")
    form.find_element(By.NAME, "json").clear()
    form.find_element(By.NAME, "json").send_keys('{"hello": "world"}')
    form.find_element(By.NAME, "ttl").send_keys("120")
    shot(browser, "03-create-form")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(browser, lambda d: '"world"' in text_of(d, "#view pre.json"))
    created = api.get("/notes/new").json()
    assert created["hello"] == "world" and created["ttl"] <= 120
    shot(browser, "04-created")

    # Edit: invalid JSON is caught before sending; valid JSON is saved.
    find(browser, "#view [data-act=edit]").click()
    form = find(browser, "#view form.editor")
    editor = form.find_element(By.NAME, "json")
    editor.clear()
    editor.send_keys('{"hello": ')
    wait(browser, lambda d: "✗" in text_of(d, "#view .validity"))
    save = form.find_element(By.CSS_SELECTOR, "button[type=submit]")
    assert not save.is_enabled()
    shot(browser, "05-edit-invalid")
    editor.clear()
    editor.send_keys('{"hello": "there", "n": 2}')
    wait(browser, lambda d: "✓" in text_of(d, "#view .validity"))
    save.click()
    wait(browser, lambda d: '"there"' in text_of(d, "#view pre.json"))
    assert api.get("/notes/new").json()["n"] == 2
    shot(browser, "06-edited")

    # Watch: another client's write shows up live; the indicator says the stream is live.
    find(browser, "#view [data-act=watch]").click()
    wait(browser, lambda d: find(d, "#conn").get_attribute("data-state") == "live")
    put(api, "notes/new", {"hello": "from another client"})
    wait(browser, lambda d: "from another client" in text_of(d, "#view pre.json"))
    assert browser.find_elements(By.CSS_SELECTOR, "#event-list li.event")
    shot(browser, "07-live-update")

    # Delete: asks once more, then the thing is gone and the folder is shown.
    find(browser, "#view [data-act=delete]").click()
    find(browser, "#view [data-act=delete].confirm").click()
    wait(browser, lambda d: d.execute_script("return location.hash") == "#/notes/")
    wait(browser, lambda d: api.get("/notes/new").status_code == 404)
    wait(browser, lambda d: "deleted notes/new" in text_of(d, "#message"))
    shot(browser, "08-deleted")

    # Watch a folder: a thing written below it by another client appears in the listing.
    find(browser, '#view[data-kind="folder"] [data-act=watch]').click()
    wait(browser, lambda d: find(d, "#conn").get_attribute("data-state") == "live")
    put(api, "notes/later", {"remember": "milk"})
    find(browser, '#view tr.thing-row[data-path="notes/later"]')
    shot(browser, "08b-folder-live-update")


def test_console_runs_and_watches_a_query(
    browser: WebDriver, api: httpx.Client, served: Served
) -> None:
    for name, score in {"ann": 30, "bob": 10, "cy": 20}.items():
        put(api, f"players/{name}", {"score": score})
    browser.get(f"{served.url}/_ui#/players/")
    find(browser, "#view details.query-panel summary").click()
    wait(browser, lambda d: "No index on this folder" in text_of(d, "#view .indexes"))
    form = find(browser, "#view form.query")
    form.find_element(By.NAME, "order_by").send_keys("score")
    form.find_element(By.NAME, "desc").click()
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()

    def rows(d: WebDriver) -> list[str]:
        return [r.text for r in d.find_elements(By.CSS_SELECTOR, "#view tr.answer-row")]

    wait(browser, lambda d: rows(d) == ["#1 ann 30", "#2 cy 20", "#3 bob 10"])
    find(browser, "#view [data-act=watch-query]").click()
    wait(browser, lambda d: find(d, "#conn").get_attribute("data-state") == "live")
    put(api, "players/dee", {"score": 99})
    wait(browser, lambda d: rows(d)[:2] == ["#1 dee 99", "#2 ann 30"])
    shot(browser, "10-live-query")
    find(browser, "#view [data-act=watch-query]").click()
    wait(browser, lambda d: find(d, "#conn").get_attribute("data-state") == "off")


def test_console_fits_a_phone_screen(browser: WebDriver, api: httpx.Client, served: Served) -> None:
    put(api, "sensors/kitchen/temp", {"value": 21.5, "note": "a long-ish text " * 8})
    browser.set_window_size(390, 844)
    try:
        browser.get(f"{served.url}/_ui#/sensors/kitchen/temp")
        wait(browser, lambda d: "long-ish" in text_of(d, "#view pre.json"))
        overflow = browser.execute_script(
            "return document.documentElement.scrollWidth - window.innerWidth"
        )
        assert overflow <= 1
        shot(browser, "09-phone")
    finally:
        browser.set_window_size(1200, 900)


def test_console_assets_come_from_the_package(served: Served) -> None:
    page = httpx.get(f"{served.url}/_ui", timeout=10)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "https://" not in page.text and "http://" not in page.text
    for asset in ("app.js", "app.css", "icon.svg"):
        assert httpx.get(f"{served.url}/_ui/{asset}", timeout=10).status_code == 200
    assert httpx.get(f"{served.url}/_ui/secret.py", timeout=10).status_code == 404


def test_docs_page_renders_the_document_offline(browser: WebDriver, served: Served) -> None:
    browser.get(f"{served.url}/_docs")
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".opblock")) >= 10, 30)
    assert "thingstash" in browser.find_element(By.CSS_SELECTOR, ".info .title").text
    shot(browser, "10-docs")


def test_console_asks_for_a_key_when_the_server_needs_one(
    browser: WebDriver, redis_client: redis.Redis, redis_server
) -> None:
    # Its own server and namespace: a key here must not close the shared server's store.
    server = Served(
        ["--redis-url", redis_server.url], env={"THINGSTASH_KEY_PREFIX": "consolekeys"}
    ).start()
    try:
        with httpx.Client(base_url=server.url, timeout=10) as open_api:
            # An open store makes its first key on the store itself, not over HTTP.
            store = open_store(redis_server.url, "consolekeys")
            _, key = keys.create_key(store, "write")
            store.close()
            # Every worker notices the new key within its short presence cache.
            wait(browser, lambda d: open_api.get("/").status_code == 401)
            with_key = {"Authorization": f"Bearer {key}"}
            put = open_api.put("/locked/box", json={"secret": 42}, headers=with_key)
            assert put.status_code == 201, put.text

        browser.get(f"{server.url}/_ui#/locked/box")
        find(browser, "#key-dialog[open]")
        shot(browser, "11-key-prompt")
        find(browser, "#key-input").send_keys(key)
        find(browser, '#key-form button[value="save"]').click()
        wait(browser, lambda d: '"secret": 42' in text_of(d, "#view pre.json"))
        find(browser, '#tree li[data-path="locked/"]')
        assert browser.execute_script("return sessionStorage.getItem('thingstash-key')") == key
        shot(browser, "12-key-accepted")
    finally:
        server.stop()

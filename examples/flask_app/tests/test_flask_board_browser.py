"""The team board in a real browser: headless Debian Chromium driven by Selenium.

The development OIDC provider and the board are served on loopback by werkzeug in
threads; the browser signs in through the provider's form, creates and reorders cards,
uploads an attachment and downloads it through its signed link, starts an export and
waits for the background job to finish, and a second user waits for an admin's
approval. No browser is downloaded: ``/usr/bin/chromium`` and ``/usr/bin/chromedriver``
come from Debian (``apt-get install chromium chromium-driver``).
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from board_helpers import board_env
from flask import Flask
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait
from teamboard import create_app
from teamboard.dev_oidc import DevOIDCProvider
from teamboard.extensions import db, mail
from teamboard.models import Card, User
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WAIT = 30  # seconds any one step may take before the test gives up
CHROME_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1000",
)


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false")


def _need_browser() -> None:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        reason = f"{', '.join(missing)} not found: apt-get install -y chromium chromium-driver"
        if _in_ci():
            pytest.fail(reason)
        pytest.skip(reason)


class _Quiet(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """No access log in the test output."""


class Served:
    """The board served on a free loopback port, in a thread."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.server: BaseWSGIServer = make_server(
            "127.0.0.1", 0, app, threaded=True, request_handler=_Quiet
        )
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def board(
    tmp_path_factory: pytest.TempPathFactory, oidc_provider: DevOIDCProvider
) -> Iterator[Served]:
    """A board on embedded defaults (SQLite file, thread jobs, memory cache, local
    files), signing in through the development provider."""
    var_dir = tmp_path_factory.mktemp("board")
    served = Served(create_app(board_env(var_dir, oidc_provider.issuer)))
    try:
        yield served
    finally:
        served.close()


@pytest.fixture(scope="module")
def downloads() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="board-downloads-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def browser(downloads: Path) -> Iterator[WebDriver]:
    _need_browser()
    profile = tempfile.mkdtemp(prefix="board-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROME_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.add_experimental_option(
        "prefs",
        {
            "download.default_directory": str(downloads),
            "download.prompt_for_download": False,
            "safebrowsing.enabled": False,
        },
    )
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


# -- steps -------------------------------------------------------------------------------


def wait_for(driver: WebDriver, condition: Callable[[WebDriver], Any], what: str) -> Any:
    """Wait until ``condition`` is truthy, across page loads (elements of the page being
    replaced go stale or missing meanwhile)."""
    wait = WebDriverWait(
        driver,
        WAIT,
        poll_frequency=0.1,
        ignored_exceptions=(StaleElementReferenceException, NoSuchElementException),
    )
    return wait.until(condition, f"waiting for {what}")


def sign_in(driver: WebDriver, board: Served, email: str, name: str) -> None:
    """Through the provider's form, back to the board (or its 'pending' page)."""
    driver.get(f"{board.url}/signin")
    driver.find_element(By.ID, "signin").click()
    form_email = wait_for(driver, lambda d: d.find_element(By.ID, "email"), "the provider form")
    form_email.clear()
    form_email.send_keys(email)
    driver.find_element(By.ID, "name").send_keys(name)
    driver.find_element(By.ID, "approve").click()
    wait_for(
        driver,
        lambda d: d.current_url.startswith(board.url) and d.find_elements(By.ID, "who"),
        f"{email} to be signed in",
    )


def sign_out(driver: WebDriver) -> None:
    driver.find_element(By.ID, "signout").click()
    wait_for(driver, lambda d: d.find_elements(By.ID, "signin"), "the sign-in page")


def titles(driver: WebDriver) -> list[str]:
    """The cards' titles in page order (one script call: atomic while pages change)."""
    found: list[str] = driver.execute_script(
        "return Array.from(document.querySelectorAll('li.card'), li => li.dataset.title)"
    )
    return found


def card(driver: WebDriver, title: str) -> WebElement:
    return driver.find_element(By.CSS_SELECTOR, f'li.card[data-title="{title}"]')


def add_card(driver: WebDriver, title: str, body: str = "") -> None:
    driver.find_element(By.ID, "card-title").send_keys(title)
    if body:
        driver.find_element(By.ID, "card-body").send_keys(body)
    driver.find_element(By.ID, "add-card").click()
    wait_for(driver, lambda d: title in titles(d), f"card {title!r}")


def downloaded(folder: Path, name: Callable[[str], bool]) -> Callable[[WebDriver], Path | None]:
    """A wait condition: a finished download (no ``.crdownload`` left) whose name fits."""

    def check(_driver: WebDriver) -> Path | None:
        files = list(folder.iterdir())
        if any(f.suffix == ".crdownload" for f in files):
            return None
        return next((f for f in files if name(f.name)), None)

    return check


# -- tests -------------------------------------------------------------------------------


def test_cards_attachments_and_export(
    browser: WebDriver, board: Served, downloads: Path, tmp_path: Path
) -> None:
    sign_in(browser, board, "ann@example.com", "Ann")  # the first user: admin
    assert "admin" in browser.find_element(By.ID, "who").text
    assert browser.find_elements(By.ID, "admin-link")

    for title in ("Write the plan", "Build it", "Ship it"):
        add_card(browser, title)
    assert titles(browser) == ["Write the plan", "Build it", "Ship it"]

    card(browser, "Ship it").find_element(By.CSS_SELECTOR, "button.move-up").click()
    wait_for(browser, lambda d: titles(d)[1] == "Ship it", "the move up")
    card(browser, "Write the plan").find_element(By.CSS_SELECTOR, "button.move-down").click()
    wait_for(browser, lambda d: titles(d)[0] == "Ship it", "the move down")
    assert titles(browser) == ["Ship it", "Write the plan", "Build it"]
    with board.app.app_context():  # kit-db OrderingMixin kept the positions dense
        stored = db.session.scalars(Card.ordered()).all()
        assert [(c.position, c.title) for c in stored] == [
            (0, "Ship it"),
            (1, "Write the plan"),
            (2, "Build it"),
        ]

    notes = tmp_path / "meeting-notes.txt"
    notes.write_bytes(b"Ship on Friday.\nEveryone reviews the plan.\n")
    target = card(browser, "Write the plan")
    target.find_element(By.CSS_SELECTOR, "input.file").send_keys(str(notes))
    target.find_element(By.CSS_SELECTOR, "button.upload-button").click()
    link = wait_for(
        browser,
        lambda d: card(d, "Write the plan").find_elements(By.LINK_TEXT, "meeting-notes.txt"),
        "the attachment link",
    )[0]
    link.click()  # the app checks access, then redirects to a signed /files/... link
    saved = wait_for(
        browser, downloaded(downloads, lambda n: n == "meeting-notes.txt"), "the download"
    )
    assert saved.read_bytes() == notes.read_bytes()

    browser.get(board.url)
    browser.find_element(By.ID, "start-export").click()
    finished = wait_for(
        browser,
        lambda d: d.find_elements(By.CSS_SELECTOR, '.export[data-status="finished"]'),
        "the export job",
    )[0]
    assert finished.find_element(By.CSS_SELECTOR, ".export-status").text == "finished"
    finished.find_element(By.CSS_SELECTOR, "a.export-download").click()
    export = wait_for(
        browser,
        downloaded(downloads, lambda n: n.startswith("board-") and n.endswith(".csv")),
        "the export download",
    )
    rows = list(csv.reader(io.StringIO(export.read_text())))
    assert [(r[0], r[1], r[4]) for r in rows[1:]] == [
        ("1", "Ship it", "0"),
        ("2", "Write the plan", "1"),
        ("3", "Build it", "0"),
    ]
    with board.app.app_context():
        assert "Your board export is ready" in [m.subject for m in mail.outbox]


def test_pending_user_waits_for_approval(browser: WebDriver, board: Served) -> None:
    browser.delete_all_cookies()
    sign_in(browser, board, "ann@example.com", "Ann")  # the admin (first user of this board)
    sign_out(browser)

    email = f"bob-{uuid.uuid4().hex[:6]}@example.com"
    sign_in(browser, board, email, "Bob")
    problem = browser.find_element(By.ID, "problem")  # kit-auth require_active: 403 pending
    assert (problem.get_attribute("data-status"), problem.get_attribute("data-reason")) == (
        "403",
        "pending",
    )
    assert "waiting for an administrator" in browser.find_element(By.ID, "pending-notice").text
    browser.get(f"{board.url}/admin")
    assert browser.find_element(By.ID, "problem").get_attribute("data-status") == "403"
    sign_out(browser)

    sign_in(browser, board, "ann@example.com", "Ann")
    browser.find_element(By.ID, "admin-link").click()
    row = wait_for(
        browser, lambda d: d.find_element(By.CSS_SELECTOR, f'tr.user[data-email="{email}"]'), "bob"
    )
    assert row.get_attribute("data-status") == "pending"
    row.find_element(By.CSS_SELECTOR, "button.approve").click()
    wait_for(
        browser,
        lambda d: (
            d.find_element(By.CSS_SELECTOR, f'tr.user[data-email="{email}"]').get_attribute(
                "data-status"
            )
            == "active"
        ),
        "the approval",
    )
    sign_out(browser)

    sign_in(browser, board, email, "Bob")
    assert browser.find_elements(By.ID, "new-card")  # the board itself now
    assert not browser.find_elements(By.ID, "admin-link")
    with board.app.app_context():
        subjects = [m.subject for m in mail.outbox]
        bob = db.session.query(User).filter_by(email=email).one()
        assert (bob.role, bob.status) == ("user", "active")
    assert "Bob is waiting for approval" in subjects
    assert "You can use the team board now" in subjects

"""The live page of the control API in a real browser: headless Chromium driven by selenium.

Chromium and its WebDriver are Debian's (``.ci/install-browser``); without them the test is
skipped on a developer's machine and fails in CI (``CI`` set), so it cannot silently stop
running.  ``FAKEPOP3_SCREENSHOT=FILE`` saves a screenshot of the page (the one in
docs/ci.md was made so).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from fakepop3 import POP3Server

from ._browser import CHROMEDRIVER, CHROMIUM, chromium

WAIT = 20.0  # seconds a condition may take to show (the page polls once a second)

if CHROMIUM is None or CHROMEDRIVER is None:
    if os.environ.get("CI"):
        raise RuntimeError("CI needs chromium and chromedriver: run .ci/install-browser")
    pytest.skip("no chromium/chromedriver: bash .ci/install-browser", allow_module_level=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    with chromium() as driver:
        yield driver


def wait_for(driver: webdriver.Chrome, what: str, condition: object) -> object:
    """Wait for ``condition(driver)`` to be true.  The page redraws itself every second, so an
    element found a moment ago may be gone: such a read is tried again."""
    try:
        return WebDriverWait(
            driver, WAIT, poll_frequency=0.1, ignored_exceptions=[StaleElementReferenceException]
        ).until(condition)  # type: ignore[arg-type]
    except TimeoutException:
        raise AssertionError(f"the live page did not show {what}") from None


def texts(driver: webdriver.Chrome, selector: str) -> list[str]:
    """The text of every element matching ``selector``, read in one go (no stale elements)."""
    script = "return [...document.querySelectorAll(arguments[0])].map((e) => e.innerText)"
    return list(driver.execute_script(script, selector))


def text(driver: webdriver.Chrome, selector: str) -> str:
    return "\n".join(texts(driver, selector))


def test_a_poplib_session_appears_with_its_transcript(browser: webdriver.Chrome) -> None:
    with POP3Server(users={"alice": "secret"}, control_port=0) as server:
        server.mailbox("alice").add_message(subject="Quarterly report", text="Numbers inside.")
        server.faults.on("NOOP").error("No NOOP today")
        browser.get(f"{server.control_url}/")
        wait_for(browser, "that it is live", lambda d: "live" in text(d, "#status"))
        assert browser.find_element(By.ID, "no-sessions").is_displayed()

        client = server.client("alice", "secret")
        client.stat()
        open_session = wait_for(
            browser, "the open session", lambda d: [t for t in texts(d, ".session") if "open" in t]
        )
        assert "alice" in open_session[0]  # type: ignore[index]
        with pytest.raises(Exception, match="No NOOP today"):
            client.noop()
        client.retr(1)
        client.quit()
        server.wait_for_sessions(1)

        def ended(driver: webdriver.Chrome) -> str | None:
            return next((t for t in texts(driver, ".session") if "ended: quit" in t), None)

        shown = str(wait_for(browser, "the ended session's transcript", ended))
        for line in ("C: USER alice", "C: PASS ***", "C: RETR 1", "S: -ERR No NOOP today"):
            assert line in shown, shown
        assert "secret" not in browser.page_source  # the password never reaches the page
        assert "1 fault(s) fired" in shown

        wait_for(browser, "the fault rule", lambda d: "No NOOP today" in text(d, "#faults"))
        # A click on the message, by script: the list it is in is redrawn every second.
        browser.execute_script(
            "document.querySelector('.user[data-user=\"alice\"] button.msg').click()"
        )
        wait_for(
            browser,
            "the message's text part",
            lambda d: "Numbers inside." in text(d, "#message-text"),
        )
        assert "Quarterly report" in text(browser, "#message-headers")
        shot = os.environ.get("FAKEPOP3_SCREENSHOT")
        if shot:
            browser.save_screenshot(shot)
    server.raise_errors()


def test_the_page_takes_the_token_from_its_address(browser: webdriver.Chrome) -> None:
    with POP3Server(users={"alice": "secret"}, control_port=0, control_token="t0k") as server:
        browser.get(f"{server.control_url}/")
        wait_for(browser, "the 401 without a token", lambda d: "401" in text(d, "#status"))
        browser.get(f"{server.control_url}/#token=t0k")
        browser.refresh()
        wait_for(browser, "that it is live", lambda d: "live" in text(d, "#status"))
        wait_for(browser, "alice's maildrop", lambda d: texts(d, '.user[data-user="alice"]'))


def test_mail_shown_as_text_never_runs_as_html(browser: webdriver.Chrome) -> None:
    """Mail under test is attacker-controlled: the page puts it in with textContent."""
    with POP3Server(users={"alice": "secret"}, control_port=0) as server:
        server.mailbox("alice").add_message(
            subject="<img src=x onerror=\"document.title='pwned'\">", text="<script>x</script>"
        )
        browser.get(f"{server.control_url}/")
        wait_for(browser, "the subject as text", lambda d: "<img src=x" in text(d, "#users"))
        assert browser.title != "pwned"
        assert not browser.find_elements(By.CSS_SELECTOR, "#users img")

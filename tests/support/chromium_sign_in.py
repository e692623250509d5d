"""Sign in with headless Chromium in a process of its own; print what the browser kept, as JSON.

    python -m tests.support.chromium_sign_in URL EMAIL PASSWORD

A separate process because Playwright's sync API cannot start a second time inside one
that already runs it (tests/web/test_browser.py keeps a browser open for the whole session).
"""

import json
import sys

from playwright.sync_api import sync_playwright

from scripts.preflight import chromium_executable
from tests.support.browser import CHROMIUM_ARGS


def sign_in(url, email, password):
    """Sign in at `url`, reload /jobs; the session cookie's flags and whether the page knew us."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_executable(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(base_url=url)
            page.set_default_timeout(15_000)
            page.goto("/login")
            page.get_by_label("Email").fill(email)
            page.get_by_label("Password").fill(password)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url("**/jobs")
            page.reload()
            cookies = [cookie for cookie in page.context.cookies() if cookie["name"] == "session"]
            return {
                "url": page.url,
                "signed_in": email in page.content(),
                "session_cookie": {key: cookies[0][key] for key in ("secure", "httpOnly")} if cookies else None,
            }
        finally:
            browser.close()


if __name__ == "__main__":
    print(json.dumps(sign_in(*sys.argv[1:4])))

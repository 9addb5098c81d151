#!/usr/bin/env python3
"""Logging in and out of the UI in headless Chromium (Debian's chromium + chromium-driver,
selenium) against a `drover up` with authentication on: the UI sends the browser to the
login form; pasting an operator token logs in (an HttpOnly session cookie the page's script
cannot read, and a CSRF cookie it can); the header names the token; a write the page makes
through its own helper (with the CSRF header) is not refused, the same write without the
header is refused with 403; the Audit page is refused to an operator; logging out ends the
session; an admin's Audit page lists the operator's write with its status. Saves screenshots
login.png, logged-in.png, logged-out.png, audit.png. Run by tests/tests/auth.rs.

    login_page.py --base http://127.0.0.1:PORT --token-file FILE --admin-token-file FILE --shots DIR
"""
import argparse
import os
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
import browser_common as common  # noqa: E402 - tests/ is on the path only from here

log = common.logger("login_page")

# A write made from the page: POST /api/alerts/reload (an operator may; it changes nothing
# when the rule files did not change). Returns the status.
WRITE_JS = """
const done = arguments[arguments.length - 1];
const headers = arguments[0] ? window.DroverUI.csrf('POST') : {};
fetch('/api/alerts/reload', { method: 'POST', headers }).then(r => done(r.status), e => done(String(e)));
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--token-file", required=True)
    ap.add_argument("--admin-token-file", required=True)
    ap.add_argument("--shots", required=True)
    a = common.parse_args(ap)
    token = pathlib.Path(a.token_file).read_text().strip()
    admin = pathlib.Path(a.admin_token_file).read_text().strip()
    d = common.chromium()
    d.set_script_timeout(30)

    def css(sel):
        return common.css(d, sel)

    wait = common.waiter(d, 30.0, os.path.join(a.shots, "login-failed.png"))
    try:
        d.get(a.base + "/#/apps")
        wait("the login form (the UI sends a browser without a session there)",
             lambda: d.current_url.endswith("/login") and css("#token"))
        common.shot(d, a.shots, "login", log)

        css("#token")[0].send_keys("drover_" + "0" * 64)
        css("#login-submit")[0].click()
        wait("the refusal of a wrong token", lambda: any("not valid" in e.text for e in css("#login-message")))

        css("#token")[0].send_keys(token)
        css("#login-submit")[0].click()
        wait("the UI, logged in", lambda: any("browser (operator)" in e.text for e in css("#whoami")))
        cookies = {c["name"]: c for c in d.get_cookies()}
        s = cookies["drover_session"]
        assert s["httpOnly"] and s.get("sameSite") == "Strict", s
        assert cookies["drover_csrf"].get("sameSite") == "Strict", cookies["drover_csrf"]
        assert "drover_session" not in d.execute_script("return document.cookie"), "HttpOnly"

        status = d.execute_async_script(WRITE_JS, True)
        assert status not in (401, 403), f"a write with the CSRF header: {status}"
        status = d.execute_async_script(WRITE_JS, False)
        assert status == 403, f"a write without the CSRF header: {status}"

        d.get(a.base + "/#/audit")
        wait("the audit page refused to an operator",
             lambda: "needs admin" in common.error_banner(d))
        d.get(a.base + "/#/apps")
        wait("the apps page", lambda: css('#nav a[data-page="apps"].active'))
        common.shot(d, a.shots, "logged-in", log)

        css("#logout")[0].click()
        wait("the login form after logging out", lambda: d.current_url.endswith("/login"))
        d.get(a.base + "/#/apps")
        wait("the login form again (the session is gone)",
             lambda: d.current_url.endswith("/login") and css("#token"))
        status = d.execute_async_script(WRITE_JS, False)
        assert status == 401, f"a write after logout: {status}"
        common.shot(d, a.shots, "logged-out", log)

        # An admin sees the audit trail: the operator's writes, allowed and refused.
        css("#token")[0].send_keys(admin)
        css("#login-submit")[0].click()
        wait("the UI, logged in as admin", lambda: any("root (admin)" in e.text for e in css("#whoami")))
        d.get(a.base + "/#/audit")

        def rows():
            return [r.text for r in css("#audit-rows tr.audit-row")]
        wait("the operator's write in the audit", lambda: any(
            "browser" in r and "/api/alerts/reload" in r and "200" in r for r in rows()))
        assert any("browser" in r and "/api/alerts/reload" in r and "403" in r for r in rows()), rows()
        assert any("/login" in r and "401" in r for r in rows()), rows()
        common.shot(d, a.shots, "audit", log)
        print("RESULT ok", flush=True)
    finally:
        d.quit()


if __name__ == "__main__":
    main()

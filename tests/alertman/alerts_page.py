#!/usr/bin/env python3
"""The Alerts page in headless Chromium (Debian's chromium + chromium-driver, selenium)
against a running `drover up` whose rule ALERT fires: the alert row is shown firing, the rule
is listed with its health, the history timeline has entries; a silence added through the form
appears as active and marks the alert silenced; expiring it through its button (and the
dialog) shows it expired. Saves a screenshot. Run by tests/tests/alertman.rs.

    alerts_page.py --base http://127.0.0.1:PORT --alert HotCpu --shots DIR
"""
import argparse
import os
import sys

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = os.environ.get("DROVER_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("DROVER_CHROMEDRIVER", "/usr/bin/chromedriver")


def log(*a):
    print("alerts_page:", *a, file=sys.stderr, flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--alert", required=True)
    ap.add_argument("--shots", required=True)
    a = ap.parse_args()
    os.makedirs(a.shots, exist_ok=True)
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1000", "--no-first-run", "--disable-extensions"):
        opts.add_argument(arg)
    d = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    d.set_page_load_timeout(30)

    def css(sel):
        return d.find_elements(By.CSS_SELECTOR, sel)

    def wait(what, cond, timeout=20.0):
        try:
            return WebDriverWait(d, timeout, poll_frequency=0.1,
                                 ignored_exceptions=(StaleElementReferenceException,)).until(lambda _: cond())
        except TimeoutException:
            d.save_screenshot(os.path.join(a.shots, "alerts-failed.png"))
            banner = css("#error")
            err = banner[0].text if banner and banner[0].is_displayed() else ""
            raise AssertionError(f"timed out waiting for {what} (error banner: {err!r})")

    try:
        d.get(a.base + "/#/alerts")
        wait("the Alerts nav link", lambda: any(x.is_displayed() for x in css('#nav a[data-page="alerts"]')))
        row = f'#alerts tr[data-alert="{a.alert}"][data-state="firing"]'
        wait("the firing alert", lambda: css(row))
        wait("the rules table", lambda: css(f'#rules tr[data-rule="{a.alert}"]'))
        health = css(f'#rules tr[data-rule="{a.alert}"]')[0].get_attribute("data-health")
        assert health == "firing", f"rule health {health!r}"
        wait("the history", lambda: css('#history .ev[data-state="firing"]'))
        # Silence it through the form.
        css(row + " button")[0].click()
        matchers = css("#silence-matchers")[0].get_attribute("value")
        assert f'alertname="{a.alert}"' in matchers, matchers
        css("#silence-by")[0].send_keys("browser")
        css("#silence-comment")[0].send_keys("silenced from the UI")
        css("#silence-add")[0].click()
        wait("the active silence", lambda: css('#silences tr[data-state="active"]'))
        wait("the alert marked silenced", lambda: css(f'#alerts tr[data-alert="{a.alert}"][data-muted="silenced"]'))
        d.save_screenshot(os.path.join(a.shots, "alerts.png"))
        log("screenshot", os.path.join(a.shots, "alerts.png"))
        # Expire it.
        css('#silences tr[data-state="active"] button')[0].click()
        wait("the dialog", lambda: css("#dialog-ok") and css("#dialog-ok")[0].is_displayed())
        css("#dialog-ok")[0].click()
        wait("the expired silence", lambda: css('#silences tr[data-state="expired"]'))
        wait("the alert no longer silenced", lambda: css(f'#alerts tr[data-alert="{a.alert}"][data-muted=""]'))
        print("RESULT ok", flush=True)
    finally:
        d.quit()


if __name__ == "__main__":
    main()

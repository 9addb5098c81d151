#!/usr/bin/env python3
"""The Autoscaler page in headless Chromium (Debian's chromium + chromium-driver, selenium)
against a running `drover up` with a policy for APP: the policy is listed with its status;
its detail (#/autoscaler/NAME) draws the instances line and the load and target lines of its
chart, lists at least one decision with its winner and outcome, and shows the last decision in
words. Saves autoscaler.png and autoscaler-policy.png. Exits 1 with a message on a failure.

    autoscaler_page.py --url http://127.0.0.1:PORT --app /demo --screenshots DIR
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
    print("autoscaler_page:", *a, file=sys.stderr, flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True, help="the Drover server, e.g. http://127.0.0.1:8080")
    ap.add_argument("--app", required=True, help="the app (or service) a policy scales, e.g. /demo")
    ap.add_argument("--screenshots", required=True, help="directory for the screenshots")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for each step")
    a = ap.parse_args()
    os.makedirs(a.screenshots, exist_ok=True)
    base = a.url.rstrip("/")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1200", "--no-first-run", "--disable-extensions"):
        opts.add_argument(arg)
    d = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    d.set_page_load_timeout(30)

    def css(sel):
        return d.find_elements(By.CSS_SELECTOR, sel)

    def wait(what, cond, timeout=None):
        try:
            return WebDriverWait(d, timeout or a.timeout, poll_frequency=0.2,
                                 ignored_exceptions=(StaleElementReferenceException,)).until(lambda _: cond())
        except TimeoutException:
            d.save_screenshot(os.path.join(a.screenshots, "autoscaler-failed.png"))
            banner = css("#error")
            err = banner[0].text if banner and banner[0].is_displayed() else ""
            raise AssertionError(f"timed out after {timeout or a.timeout:.0f} s waiting for {what} "
                                 f"(error banner: {err!r}; screenshot autoscaler-failed.png)")

    row_sel = f'#policies tr[data-target="{a.app}"]'
    try:
        d.get(base + "/#/autoscaler")
        wait("the Autoscaler nav link", lambda: any(x.is_displayed() for x in css('#nav a[data-page="autoscaler"]')))
        wait(f"a policy for {a.app} in the list", lambda: css(row_sel))
        row = css(row_sel)[0]
        name = row.get_attribute("data-policy")
        state = row.get_attribute("data-state")
        assert state in ("active", "paused"), f"policy {name}: state {state!r}"
        status = row.find_elements(By.CSS_SELECTOR, "[data-status]")
        assert status and status[0].text.strip() == state, f"policy {name}: no status badge for {state!r}"
        log(f"policy {name} for {a.app}: {state}; last: {row.find_element(By.CSS_SELECTOR, 'td.last').text!r}")
        d.save_screenshot(os.path.join(a.screenshots, "autoscaler.png"))
        log("screenshot", os.path.join(a.screenshots, "autoscaler.png"))

        # The detail, through the policy's link.
        row.find_element(By.CSS_SELECTOR, "a.policy-link").click()
        wait("the policy's detail", lambda: css(f'#policy-detail[data-policy="{name}"]') and css("#policy-detail")[0].is_displayed())
        wait("the instances line on the chart", lambda: css('#chart-instances svg path.series[data-name="instances"]'))
        wait("the load line on the chart", lambda: css('#chart-load svg path.series[data-name="load"]'))
        wait("the target line on the chart", lambda: css('#chart-load svg path.series[data-name="target"]'))
        marks = css("#chart-instances svg line.decision")
        log(f"chart: {len(marks)} change(s) marked")
        wait("a decision in the table", lambda: css("#decisions tbody tr[data-outcome]"))
        dec = css("#decisions tbody tr[data-outcome]")[0]
        winner = dec.get_attribute("data-winner")
        outcome = dec.get_attribute("data-outcome")
        assert winner, "the newest decision has no winner"
        assert outcome, "the newest decision has no outcome"
        assert winner in dec.find_element(By.CSS_SELECTOR, "td.winner").text, f"winner {winner!r} not shown"
        assert dec.find_element(By.CSS_SELECTOR, "td.outcome").text.strip(), "outcome not shown"
        log(f"decisions: {len(css('#decisions tbody tr[data-outcome]'))}; newest: winner {winner}, outcome {outcome}")
        wait("the explain text", lambda: css('#explain[data-state="ready"]') and "→" in css("#explain")[0].text)
        text = css("#explain")[0].text
        assert a.app in text, f"explain text does not name {a.app}: {text!r}"
        log("explain:", text.splitlines()[0])
        d.save_screenshot(os.path.join(a.screenshots, "autoscaler-policy.png"))
        log("screenshot", os.path.join(a.screenshots, "autoscaler-policy.png"))
        print("RESULT ok", flush=True)
    except AssertionError as e:
        print(f"autoscaler_page: FAILED: {e}", file=sys.stderr, flush=True)
        sys.exit(1)
    except Exception as e:  # selenium's own (no such element, a crashed browser, …)
        try:
            d.save_screenshot(os.path.join(a.screenshots, "autoscaler-failed.png"))
        except Exception:
            pass
        print(f"autoscaler_page: FAILED: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        sys.exit(1)
    finally:
        d.quit()


if __name__ == "__main__":
    main()

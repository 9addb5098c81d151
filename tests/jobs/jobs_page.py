#!/usr/bin/env python3
"""The Jobs page in headless Chromium (Debian's chromium + chromium-driver, selenium) against
a running master with the job JOB (not scheduled to run soon): the job is listed with its
schedule and next run; "Run now" in its row makes a run that succeeds (the row's last
outcome turns SUCCEEDED); its history page lists the manual run with a link to its logs in
the log search. Saves a screenshot. Run by tests/tests/jobs.rs.

    jobs_page.py --base http://127.0.0.1:PORT --job JOB --shots DIR
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
    print("jobs_page:", *a, file=sys.stderr, flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--job", required=True)
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

    def wait(what, cond, timeout=60.0):
        try:
            return WebDriverWait(d, timeout, poll_frequency=0.1,
                                 ignored_exceptions=(StaleElementReferenceException,)).until(lambda _: cond())
        except TimeoutException:
            d.save_screenshot(os.path.join(a.shots, "jobs-failed.png"))
            banner = css("#error")
            err = banner[0].text if banner and banner[0].is_displayed() else ""
            raise AssertionError(f"timed out waiting for {what} (error banner: {err!r})")

    try:
        d.get(a.base + "/#/jobs")
        wait("the Jobs nav link", lambda: any(x.is_displayed() for x in css('#nav a[data-page="jobs"]')))
        row = f'#jobs tr[data-job="{a.job}"]'
        wait("the job's row", lambda: css(row))
        assert "–" not in css(row + " td.next-run")[0].text, "a next run is shown"
        assert "–" == css(row + " td.last")[0].text.strip(), "no run yet"
        css(row + " button.run-now")[0].click()
        wait("the run's outcome", lambda: "SUCCEEDED" in css(row + " td.last")[0].text)
        d.save_screenshot(os.path.join(a.shots, "jobs.png"))
        log("screenshot", os.path.join(a.shots, "jobs.png"))
        css(row + " a")[0].click()
        wait("the run history", lambda: css('#runs tr[data-state="SUCCEEDED"]'))
        run = css('#runs tr[data-state="SUCCEEDED"]')[0]
        assert "manual" in run.text, run.text
        link = run.find_element(By.CSS_SELECTOR, "a.logs-link").get_attribute("href")
        assert "#/logs?q=task" in link, link
        d.save_screenshot(os.path.join(a.shots, "job-runs.png"))
        print("RESULT ok", flush=True)
    finally:
        d.quit()


if __name__ == "__main__":
    main()

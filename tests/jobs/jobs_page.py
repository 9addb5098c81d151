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
import pathlib
import sys

from selenium.webdriver.common.by import By

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
import browser_common as common  # noqa: E402 - tests/ is on the path only from here

log = common.logger("jobs_page")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--job", required=True)
    ap.add_argument("--shots", required=True)
    a = common.parse_args(ap)
    d = common.chromium()

    def css(sel):
        return common.css(d, sel)

    wait = common.waiter(d, 60.0, os.path.join(a.shots, "jobs-failed.png"))

    try:
        d.get(a.base + "/#/jobs")
        wait("the Jobs nav link", lambda: any(x.is_displayed() for x in css('#nav a[data-page="jobs"]')))
        row = f'#jobs tr[data-job="{a.job}"]'
        wait("the job's row", lambda: css(row))
        assert "–" not in css(row + " td.next-run")[0].text, "a next run is shown"
        assert "–" == css(row + " td.last")[0].text.strip(), "no run yet"
        css(row + " button.run-now")[0].click()
        wait("the run's outcome", lambda: "SUCCEEDED" in css(row + " td.last")[0].text)
        common.shot(d, a.shots, "jobs", log)
        css(row + " a")[0].click()
        wait("the run history", lambda: css('#runs tr[data-state="SUCCEEDED"]'))
        run = css('#runs tr[data-state="SUCCEEDED"]')[0]
        assert "manual" in run.text, run.text
        link = run.find_element(By.CSS_SELECTOR, "a.logs-link").get_attribute("href")
        assert "#/logs?q=task" in link, link
        common.shot(d, a.shots, "job-runs")
        print("RESULT ok", flush=True)
    finally:
        d.quit()


if __name__ == "__main__":
    main()

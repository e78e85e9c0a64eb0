"""Screenshots of the grounding page and the review tool for docs/inference.md, taken in headless Chromium.

    .venv/bin/python scripts/web_screenshots.py ROOT CHECKPOINT OUT_DIR

ROOT is a DIOR-RSVG folder (the demo's ``demo_out/rsvg``), CHECKPOINT a trained run's ``best`` folder. The review
decisions of the pictures go to a scratch database in OUT_DIR (ROOT's own review file is not touched). Needs the
``dev`` extra (selenium) and Debian's chromium and chromium-driver. Writes ``ground.png``, ``review_unsaved.png``
and ``review_agreement.png``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from rsvg.data.dior_rsvg import read_split_file
from rsvg.inference import Grounder
from rsvg.web.app import create_app
from rsvg.web.dataset_view import ReviewDataset
from rsvg.web.review_db import ReviewStore
from rsvg.web.server import BackgroundServer


def _browser(profile: Path) -> webdriver.Chrome:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        sys.exit("error: install Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,900", "--hide-scrollbars"):
        options.add_argument(arg)
    options.add_argument(f"--user-data-dir={profile}")
    return webdriver.Chrome(service=webdriver.ChromeService(executable_path=driver_path), options=options)


def _wait(driver: webdriver.Chrome, script: str, timeout: float = 60.0) -> object:
    return WebDriverWait(driver, timeout).until(lambda d: d.execute_script(script))


def _small_test_item(dataset: ReviewDataset, root: Path) -> int:
    """A test-split object whose box is small (so that the review tool opens zoomed in on it)."""
    for index in read_split_file(root / "test.txt"):
        x1, y1, x2, y2 = dataset.samples[index].box
        if max(x2 - x1, y2 - y1) < 30:
            return index
    return read_split_file(root / "test.txt")[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    dataset = ReviewDataset(args.root)
    db = args.out / "screenshots_review.sqlite3"
    db.unlink(missing_ok=True)
    store = ReviewStore(db, len(dataset), dataset.fingerprint)
    small = _small_test_item(dataset, args.root)
    # a review under way: two annotators over the first items, disagreeing on some
    for index in range(12):
        store.record(index, "ana", "accept")
        store.record(index, "ben", "reject" if index % 4 == 0 else "accept")
    store.record(12, "ana", "reject")
    grounder = Grounder.from_checkpoint(args.checkpoint)
    with tempfile.TemporaryDirectory() as profile, BackgroundServer(
        create_app(dataset=args.root, db_path=db, grounder=grounder)
    ) as server:
        driver = _browser(Path(profile))
        try:
            sample = dataset.samples[small]
            driver.get(f"{server.url}/")
            _wait(driver, "return document.body.dataset.ready === '1'")
            driver.find_element(By.ID, "file").send_keys(str(dataset.images[sample.image_id].resolve()))
            driver.find_element(By.ID, "query").send_keys(sample.description, Keys.ENTER)
            _wait(driver, "return document.body.dataset.result !== undefined")
            driver.save_screenshot(str(args.out / "ground.png"))

            driver.get(f"{server.url}/review#{small}")
            _wait(driver, "return document.body.dataset.ready === '1'")
            driver.find_element(By.ID, "annotator").send_keys("ana", Keys.ENTER)
            body = driver.find_element(By.TAG_NAME, "body")
            ActionChains(driver).click_and_hold(driver.find_element(By.CSS_SELECTOR, "rect.box")).move_by_offset(
                18, 12
            ).release().perform()
            body.send_keys(Keys.ARROW_RIGHT)
            _wait(driver, "return document.body.dataset.unsaved === '1'")
            driver.save_screenshot(str(args.out / "review_unsaved.png"))
            body.send_keys("d")
            _wait(driver, f"return document.body.dataset.index !== '{small}'")

            driver.get(f"{server.url}/review#0")
            _wait(driver, "return document.body.dataset.ready === '1' && document.body.dataset.index === '0'")
            driver.find_element(By.ID, "progress-agreement").click()
            driver.save_screenshot(str(args.out / "review_agreement.png"))
        finally:
            driver.quit()
    db.unlink(missing_ok=True)
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    print(f"wrote {', '.join(p.name for p in sorted(args.out.glob('*.png')))} to {args.out}")


if __name__ == "__main__":
    main()

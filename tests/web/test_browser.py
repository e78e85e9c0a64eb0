"""End to end in a real headless Chromium (Debian's chromium + chromium-driver, driven by Selenium).

Review with the keyboard (accept, reject, edit the text), drag a box corner, reload and find every decision,
undo, export, and check the exported dataset; then ground a query on an uploaded image.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rsvg.data.check import check_dataset
from rsvg.data.dior_rsvg import read_grounding_annotations, read_split_file
from rsvg.inference import Grounder
from rsvg.web.app import create_app
from rsvg.web.export import export_reviewed
from rsvg.web.server import BackgroundServer

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
INSTALL = "install Debian's chromium and chromium-driver (apt-get install chromium chromium-driver) to run it"
webdriver = pytest.importorskip("selenium.webdriver", reason=f"selenium is not installed; {INSTALL}")
if CHROMIUM is None or CHROMEDRIVER is None:
    pytest.skip(f"no Chromium/ChromeDriver found for the browser test: {INSTALL}", allow_module_level=True)

from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from helpers.datasets import make_official_dataset  # noqa: E402
from helpers.models import lite_checkpoint, tiny_checkpoint  # noqa: E402


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        "--window-size=1300,900",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
    ):
        options.add_argument(arg)
    service = webdriver.ChromeService(executable_path=CHROMEDRIVER)  # no Selenium Manager, no downloads
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BackgroundServer, Path]]:

    root = make_official_dataset(tmp_path_factory.mktemp("browser") / "dior_rsvg")
    grounder = Grounder.from_checkpoint(tiny_checkpoint(tmp_path_factory))
    with BackgroundServer(create_app(dataset=root, grounder=grounder)) as srv:
        yield srv, root


def _wait(driver, script: str, timeout: float = 30.0):
    # generous: a loaded 2-core machine has taken over 10 s to answer a review step's round trip
    return WebDriverWait(driver, timeout).until(lambda d: d.execute_script(script))


def _wait_index(driver, index: int) -> None:
    _wait(driver, f"return document.body.dataset.index === '{index}'")


def _progress(driver) -> list[str]:
    return [
        driver.find_element(By.ID, i).text
        for i in ("progress-done", "progress-accepted", "progress-rejected", "progress-edited")
    ]


def _open_review(driver, url: str) -> None:
    driver.get(url)
    _wait(driver, "return document.body.dataset.ready === '1'")


def test_review_with_keyboard_reload_undo_export(browser, server, tmp_path):
    srv, root = server
    _open_review(browser, f"{srv.url}/review")
    _wait_index(browser, 0)
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys("a")  # no annotator yet: nothing is recorded, the name field asks for one
    _wait(browser, "return document.activeElement.id === 'annotator'")
    browser.find_element(By.ID, "annotator").send_keys("alice", Keys.ENTER)

    body.send_keys("a")  # accept 0
    _wait_index(browser, 1)
    body.send_keys("r")  # reject 1
    _wait_index(browser, 2)
    body.send_keys("e")  # edit the text of 2
    text = browser.find_element(By.ID, "expression")
    _wait(browser, "return document.activeElement.id === 'expression'")
    text.send_keys(Keys.CONTROL, "a")
    text.send_keys("The small ship below the service area", Keys.ENTER)
    _wait_index(browser, 3)
    # item 3: drag the bottom-right corner, then accept = save the correction
    handle = browser.find_element(By.CSS_SELECTOR, "circle.handle-br")
    ActionChains(browser).click_and_hold(handle).move_by_offset(25, 20).release().perform()
    _wait(browser, "return !document.getElementById('dirty').hidden")
    body.send_keys("a")
    _wait_index(browser, 4)
    # the counts follow the server's answer, which may land just after the next item is shown
    WebDriverWait(browser, 10).until(lambda d: _progress(d) == ["4 / 6 done", "1 accepted", "1 rejected", "2 edited"])

    browser.refresh()  # every decision was committed before the next item appeared
    _wait(browser, "return document.body.dataset.ready === '1'")
    _wait_index(browser, 4)
    body, text = browser.find_element(By.TAG_NAME, "body"), browser.find_element(By.ID, "expression")
    assert browser.find_element(By.ID, "annotator").get_attribute("value") == "alice"
    assert _progress(browser) == ["4 / 6 done", "1 accepted", "1 rejected", "2 edited"]
    expected = {3: "edited", 2: "edited", 1: "rejected", 0: "accepted"}
    for index, status in expected.items():  # Back walks through them
        body.send_keys("b")
        _wait_index(browser, index)
        assert browser.execute_script("return document.body.dataset.status") == status
        if index == 2:
            assert text.get_attribute("value") == "The small ship below the service area"
            assert "Original: A ship below" in browser.find_element(By.ID, "original").text
        if index == 3:
            box_text = browser.find_element(By.ID, "item-box").text
            assert not box_text.startswith("120, 130 → 160, 150")
        assert "alice" in browser.find_element(By.ID, "history").text

    body.send_keys("u")  # undo alice's latest: the box correction of 3
    _wait_index(browser, 3)
    _wait(browser, "return document.body.dataset.status === 'unreviewed'")
    assert "undone by alice" in browser.find_element(By.ID, "history").text
    WebDriverWait(browser, 10).until(lambda d: _progress(d)[0] == "3 / 6 done")  # the counts follow the answer
    body.send_keys("2")  # select the top-right corner and nudge it left with the keyboard, then save
    body.send_keys(Keys.SHIFT, Keys.ARROW_LEFT)
    _wait(browser, "return !document.getElementById('dirty').hidden")
    body.send_keys(Keys.ENTER)
    _wait_index(browser, 4)
    WebDriverWait(browser, 10).until(lambda d: _progress(d) == ["4 / 6 done", "1 accepted", "1 rejected", "2 edited"])

    out = tmp_path / "reviewed"
    summary = export_reviewed(root, out)
    errors = check_dataset(out).errors  # sound, but the review rejected val's only expression
    assert [(Path(p.file).name, p.kind) for p in errors] == [("val.txt", "empty_split")], [str(p) for p in errors]
    samples = read_grounding_annotations(out).samples
    assert summary.objects_out == len(samples) == 5
    assert samples[1].description == "The small ship below the service area"
    assert samples[2].box[2] == 150.0 and samples[2].box[:2] == (120.0, 130.0)  # x2 moved 10 px left
    # splits train [5, 0, 3] val [1] test [4, 2]; index 1 rejected: 2..5 -> 1..4
    assert read_split_file(out / "train.txt") == [4, 0, 2]
    assert read_split_file(out / "val.txt") == []
    assert read_split_file(out / "test.txt") == [3, 1]


def test_grounding_page_upload(browser, server):
    srv, root = server
    browser.get(f"{srv.url}/")
    _wait(browser, "return document.body.dataset.ready === '1'")
    # the dataset's image list is fetched when the picker is opened, not with the page
    assert browser.execute_script("return document.body.dataset.images") is None
    assert not browser.find_element(By.ID, "pick-wrap").is_displayed()
    browser.find_element(By.ID, "pick-open").click()
    _wait(browser, "return document.body.dataset.images === '3'")
    options = browser.find_elements(By.CSS_SELECTOR, "#pick option")
    assert [o.get_attribute("value") for o in options] == ["", "00001", "00002", "00003"]
    browser.find_element(By.ID, "file").send_keys(str(root / "JPEGImages" / "00002.jpg"))
    browser.find_element(By.ID, "query").send_keys("the large ship on the lower right", Keys.ENTER)
    _wait(browser, "return document.body.dataset.result !== undefined", timeout=20)
    box = browser.execute_script("return JSON.parse(document.body.dataset.result)")
    assert len(box) == 4 and 0 <= box[0] <= box[2] <= 200 and 0 <= box[1] <= box[3] <= 160
    assert browser.find_element(By.ID, "box-px").text.startswith("x1 ")
    assert browser.find_element(By.ID, "image-size").text == "200 × 160 px"
    assert browser.find_element(By.ID, "heatmap").is_displayed()
    assert browser.find_element(By.ID, "error").get_attribute("hidden") is not None
    assert 0 < float(browser.find_element(By.ID, "score").text) <= 1  # the score, heatmap or not
    assert not browser.find_element(By.ID, "warnings").is_displayed()  # a plain English query: no warning
    assert not browser.find_element(By.ID, "first-look").is_displayed()  # the paper's model has no later steps


def test_grounding_page_warns_counts_tokens_and_checks_files(browser, server, tmp_path):
    """A nonsense query: the warning beside the score; the token counter as the server counts; a text file refused
    on selection with the result kept; a query over the limit refused in words, without a raw status code."""
    srv, root = server
    status = httpx.get(f"{srv.url}/api/status").json()
    browser.get(f"{srv.url}/")
    _wait(browser, "return document.body.dataset.ready === '1'")
    assert f"up to {status['max_tokens']} tokens" in browser.find_element(By.ID, "limits").text
    browser.find_element(By.ID, "file").send_keys(str(root / "JPEGImages" / "00001.jpg"))
    query = browser.find_element(By.ID, "query")
    nonsense = "asdkfj qwpeoi zzxv"
    query.send_keys(nonsense)
    counted = httpx.post(f"{srv.url}/api/tokens", json={"query": nonsense}).json()
    counter = browser.find_element(By.ID, "query-count")
    WebDriverWait(browser, 10).until(lambda _: counter.text == f"{counted['tokens']} / {status['max_tokens']} tokens")
    _wait(browser, "return !document.getElementById('query-warning').hidden")  # warned while typing
    query.send_keys(Keys.ENTER)
    _wait(browser, "return document.body.dataset.result !== undefined", timeout=20)
    warning = browser.find_element(By.ID, "warnings")
    assert warning.is_displayed() and "unknown to the text encoder" in warning.text
    assert 0 < float(browser.find_element(By.ID, "score").text) <= 1
    shown = browser.execute_script("return document.body.dataset.result")

    text_file = tmp_path / "notes.txt"
    text_file.write_text("not an image")
    browser.find_element(By.ID, "file").send_keys(str(text_file))
    _wait(browser, "return document.body.dataset.refused === 'notes.txt'")
    error = browser.find_element(By.ID, "error")
    assert error.is_displayed() and "not an image this page can ground" in error.text
    assert browser.find_element(By.ID, "result").is_displayed()  # the answer shown stays
    assert browser.execute_script("return document.body.dataset.result") == shown
    assert browser.find_element(By.ID, "photo").get_attribute("src").startswith("blob:")

    query.clear()
    long_query = " ".join(["ship"] * (status["max_tokens"] + 3))
    query.send_keys(long_query)
    WebDriverWait(browser, 10).until(lambda _: "too long" in counter.text)
    query.send_keys(Keys.ENTER)  # refused before it is sent, with the server's sentence; the last image is still used
    WebDriverWait(browser, 10).until(lambda _: "more than the model's" in error.text)
    assert not re.match(r"\s*\d{3}", error.text) and error.text.startswith("Query needs")
    assert browser.execute_script("return document.body.dataset.result") == shown


def test_grounding_page_says_which_step_moved_the_box(browser, tmp_path_factory):
    """With the lite config's later steps, the caption under the answer is the API's provenance sentence."""

    root = make_official_dataset(tmp_path_factory.mktemp("browser_lite") / "dior_rsvg")
    grounder = Grounder.from_checkpoint(lite_checkpoint(tmp_path_factory))
    with BackgroundServer(create_app(dataset=root, grounder=grounder)) as srv:
        browser.get(f"{srv.url}/")
        _wait(browser, "return document.body.dataset.ready === '1'")
        image = root / "JPEGImages" / "00002.jpg"
        browser.find_element(By.ID, "file").send_keys(str(image))
        query = "the large ship on the lower right"
        browser.find_element(By.ID, "query").send_keys(query, Keys.ENTER)
        _wait(browser, "return document.body.dataset.result !== undefined", timeout=20)
        shown = browser.execute_script("return JSON.parse(document.body.dataset.result)")
        caption = browser.find_element(By.ID, "provenance")
        expected = grounder.predict(image, query)
        assert shown == [round(v, 2) for v in expected.box]
        assert caption.is_displayed() and caption.text == expected.provenance()
        assert "first look" in caption.text
        # the first look's box is drawn (dashed yellow, under the answer) where a later step moved the answer
        first = browser.find_element(By.ID, "first-look")
        legend = browser.find_element(By.ID, "legend-first-look")
        assert expected.moved_by, "the tiny lite model is expected to move its first look here"
        assert first.is_displayed() and legend.is_displayed()
        rect = browser.find_element(By.CSS_SELECTOR, "#first-look rect")
        x, y, w, h = (float(rect.get_attribute(k)) for k in ("x", "y", "width", "height"))
        fx1, fy1, fx2, fy2 = (round(v, 2) for v in expected.first_look_box)
        assert (x, y) == pytest.approx((fx1, fy1), abs=0.01) and (x + w, y + h) == pytest.approx((fx2, fy2), abs=0.01)
        assert rect.value_of_css_property("stroke") == "rgb(250, 220, 40)"  # rsvg ground's FIRST_LOOK colour


def test_login_review_ground_and_logout(browser, tmp_path_factory):
    """With accounts: /review sends the browser to the login page, which brings it back logged in; decisions go
    under the account (no name field), the grounding page posts with the session's CSRF token, Log out ends it."""
    from rsvg.web.accounts import AccountStore
    from rsvg.web.dataset_view import ReviewDataset, default_db_path
    from rsvg.web.review_db import ReviewStore

    root = make_official_dataset(tmp_path_factory.mktemp("browser_login") / "dior_rsvg")
    AccountStore(default_db_path(root)).add_user("ana", "ana's password", "annotator")
    grounder = Grounder.from_checkpoint(tiny_checkpoint(tmp_path_factory))
    browser.delete_all_cookies()
    try:
        with BackgroundServer(create_app(dataset=root, grounder=grounder)) as srv:
            browser.get(f"{srv.url}/review")
            _wait(browser, "return document.body.dataset.ready === '1' && location.pathname === '/login'")
            browser.find_element(By.ID, "name").send_keys("ana")
            browser.find_element(By.ID, "password").send_keys("not her password", Keys.ENTER)
            _wait(browser, "return !document.getElementById('login-error').hidden")
            assert "Wrong user name or password" in browser.find_element(By.ID, "login-error").text
            browser.find_element(By.ID, "password").clear()
            browser.find_element(By.ID, "password").send_keys("ana's password", Keys.ENTER)
            _wait(browser, "return location.pathname === '/review' && document.body.dataset.ready === '1'")
            cookie = browser.get_cookie("rsvg_session")
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
            assert browser.find_element(By.ID, "account-name").text == "ana (annotator)"
            assert not browser.find_element(By.ID, "annotator").is_displayed()
            _wait_index(browser, 0)
            browser.find_element(By.TAG_NAME, "body").send_keys("a")  # accept 0, recorded under ana
            _wait_index(browser, 1)
            dataset = ReviewDataset(root)
            store = ReviewStore(default_db_path(root), len(dataset), dataset.fingerprint)
            WebDriverWait(browser, 10).until(lambda _: [d.annotator for d in store.decisions()] == ["ana"])

            browser.get(f"{srv.url}/")  # the grounding page's POST carries the CSRF token
            _wait(browser, "return document.body.dataset.ready === '1'")
            browser.find_element(By.ID, "file").send_keys(str(root / "JPEGImages" / "00002.jpg"))
            browser.find_element(By.ID, "query").send_keys("the large ship on the lower right", Keys.ENTER)
            _wait(browser, "return document.body.dataset.result !== undefined", timeout=20)

            browser.get(f"{srv.url}/review")
            _wait(browser, "return document.body.dataset.ready === '1'")
            browser.find_element(By.ID, "btn-logout").click()
            _wait(browser, "return location.pathname === '/login'")
            assert browser.get_cookie("rsvg_session") is None
            browser.get(f"{srv.url}/review")
            _wait(browser, "return location.pathname === '/login'")
            # a "next" that leads off this server is not followed
            browser.get(f"{srv.url}/login?next=%2F%5Cevil.test%2Fx")
            _wait(browser, "return document.body.dataset.ready === '1'")
            browser.find_element(By.ID, "name").send_keys("ana")
            browser.find_element(By.ID, "password").send_keys("ana's password", Keys.ENTER)
            _wait(browser, "return location.pathname === '/review' && document.body.dataset.ready === '1'")
            assert browser.current_url.startswith(srv.url)
    finally:
        browser.delete_all_cookies()


def _handle_inside_viewport(driver, corner: str) -> bool:
    return driver.execute_script(
        "const h = document.querySelector(`circle.handle-${arguments[0]}`).getBoundingClientRect();"
        "const v = document.getElementById('viewport').getBoundingClientRect();"
        "return h.width > 0 && h.left >= v.left && h.right <= v.right && h.top >= v.top && h.bottom <= v.bottom;",
        corner,
    )


def test_review_keeps_unsaved_edits_zooms_small_boxes_and_shows_disputes(browser, tmp_path_factory):
    """An unsaved correction survives the arrow keys (saved or discarded only when the reviewer says so), Esc
    drops the corner first and the correction second, #N in the address bar navigates, a small box opens zoomed
    with its handles on screen, and a disputed object shows each verdict and the agreement explained."""
    from rsvg.web.dataset_view import ReviewDataset, default_db_path
    from rsvg.web.review_db import ReviewStore

    root = make_official_dataset(tmp_path_factory.mktemp("browser_unsaved") / "dior_rsvg")
    dataset = ReviewDataset(root)
    with BackgroundServer(create_app(dataset=root)) as srv:
        store = ReviewStore(default_db_path(root), len(dataset), dataset.fingerprint)
        _open_review(browser, f"{srv.url}/review")
        _wait_index(browser, 0)
        browser.find_element(By.ID, "annotator").clear()
        browser.find_element(By.ID, "annotator").send_keys("rita", Keys.ENTER)
        body = browser.find_element(By.TAG_NAME, "body")
        _wait(browser, "return document.body.dataset.zoom === '1'")  # a 40 px tank: no zoom, once its image loaded

        # drag the whole box (no corner picked), then → : the page asks instead of skipping
        box = browser.find_element(By.CSS_SELECTOR, "rect.box")
        ActionChains(browser).click_and_hold(box).move_by_offset(15, 10).release().perform()
        _wait(browser, "return !document.getElementById('dirty').hidden")
        body.send_keys(Keys.ARROW_RIGHT)
        _wait(browser, "return document.body.dataset.unsaved === '1'")
        assert browser.find_element(By.ID, "unsaved").is_displayed()
        body.send_keys(Keys.ESCAPE)  # stay: the correction is still there
        _wait(browser, "return document.body.dataset.unsaved === undefined")
        assert browser.execute_script("return document.body.dataset.index") == "0"
        assert browser.find_element(By.ID, "dirty").is_displayed()
        body.send_keys(Keys.ARROW_RIGHT)
        _wait(browser, "return document.body.dataset.unsaved === '1'")
        body.send_keys(Keys.ENTER)  # save it, then go on
        _wait_index(browser, 1)
        WebDriverWait(browser, 10).until(lambda _: [d.action for d in store.decisions()] == ["edit"])
        saved = store.decisions()[0]
        assert saved.index == 0 and saved.annotator == "rita" and saved.box[0] > 50 and saved.box[1] > 60

        # Esc: first the picked corner, then the correction
        body.send_keys("1", Keys.ARROW_DOWN)
        _wait(browser, "return !document.getElementById('dirty').hidden")
        body.send_keys(Keys.ESCAPE)
        assert browser.execute_script("return document.querySelector('circle.handle.selected') === null")
        assert browser.find_element(By.ID, "dirty").is_displayed()
        body.send_keys(Keys.ESCAPE)
        _wait(browser, "return document.getElementById('dirty').hidden")
        # a correction, then ←, then D: discarded, and back to 0 with nothing recorded for 1
        body.send_keys("3", Keys.ARROW_UP, Keys.ESCAPE, Keys.ARROW_LEFT)
        _wait(browser, "return document.body.dataset.unsaved === '1'")
        body.send_keys("d")
        _wait_index(browser, 0)
        assert [d.index for d in store.decisions()] == [0]

        # #N in the address bar; a small box opens zoomed in, its corners on screen
        browser.execute_script("location.hash = '#4'")
        _wait_index(browser, 4)
        # the zoom is set once the item's image has loaded, just after the index
        _wait(browser, "return Number(document.body.dataset.zoom) > 1")
        assert browser.find_element(By.ID, "zoom-note").is_displayed()
        for corner in ("tl", "tr", "br", "bl"):
            assert _handle_inside_viewport(browser, corner), corner
        body.send_keys("z")  # back to the whole image
        _wait(browser, "return document.body.dataset.zoom === '1'")
        browser.execute_script("location.hash = '#99'")  # no such item: said, and the address put back
        _wait(browser, "return location.hash === '#4'")
        assert "no item #99" in browser.find_element(By.ID, "toast").get_attribute("textContent")
        assert browser.execute_script("return document.body.dataset.index") == "4"

        # a dispute: sam rejected 4, rita accepts it
        store.record(4, "sam", "reject")
        body.send_keys("a")
        _wait_index(browser, 5)
        _wait(browser, "return !document.getElementById('progress-disputed').hidden")
        assert browser.find_element(By.ID, "progress-disputed").text == "1 disputed"
        browser.find_element(By.ID, "progress-disputed").click()  # shows only the disputes
        _wait_index(browser, 4)
        assert browser.find_element(By.ID, "filter-status").get_attribute("value") == "disputed"
        assert browser.find_element(By.ID, "item-status").text == "disputed · latest accepted"
        assert browser.find_element(By.ID, "item-verdicts").text == "rita: accepted · sam: rejected"
        browser.find_element(By.ID, "progress-agreement").click()
        panel = browser.find_element(By.ID, "agreement-panel")
        assert panel.is_displayed()
        explained = browser.find_element(By.ID, "agreement-explained").text
        assert "1 expressions were judged by two or more annotators" in explained and "0% gave the same" in explained
        rows = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "#agreement-annotators tbody tr")]
        assert rows == ["rita 2 1 0%", "sam 1 1 0%"]
        assert browser.find_element(By.ID, "export-command").text == "rsvg review-export dior_rsvg dior_rsvg_reviewed"
        browser.execute_script(
            "window.csvText = null; URL.createObjectURL = (blob) => { blob.text().then((t) => { window.csvText = t; });"
            " return 'data:text/plain,'; };"
        )
        browser.find_element(By.ID, "download-agreement").click()
        csv = _wait(browser, "return window.csvText")
        assert csv.splitlines()[0].startswith("scope,who,decisions") and "pair,rita & sam,,1,1,0," in csv

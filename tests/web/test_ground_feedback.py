"""What the grounding page and ``POST /api/ground`` tell a user beside the box: the score and the warnings (the same
sentence ``rsvg ground`` prints), the token count as the server counts it, errors as sentences, the heatmap's
transparency, the login page's words for where the user was going, and the image list's caching."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from helpers.datasets import make_official_dataset
from helpers.models import tiny_checkpoint
from rsvg.inference import UNKNOWN_QUERY_SHARE, Grounder, unknown_word_share
from rsvg.web.accounts import AccountStore
from rsvg.web.app import create_app
from rsvg.web.dataset_view import default_db_path
from rsvg.web.ground_api import MAX_QUERY_CHARS, attention_rgba
from rsvg.web.pages import login_purpose

NORMAL = ["the ship on the left", "A round storage tank in the middle", "the gray overpass near the windmills"]
NONSENSE = ["asdkfj qwpeoi zzxv", "xyzzy plugh blorf", "左边的绿色储罐", "🚢🚢🚢"]


@pytest.fixture(scope="module")
def grounder(tmp_path_factory: pytest.TempPathFactory) -> Grounder:
    return Grounder.from_checkpoint(tiny_checkpoint(tmp_path_factory))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_official_dataset(tmp_path_factory.mktemp("feedback") / "dior_rsvg")


@pytest.fixture(scope="module")
def client(dataset: Path, grounder: Grounder) -> TestClient:
    return TestClient(create_app(dataset=dataset, grounder=grounder))


def _jpeg(width: int = 120, height: int = 90) -> bytes:
    img = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
    return cv2.imencode(".jpg", img)[1].tobytes()


def _ground(client: TestClient, query: str, **fields: str):
    return client.post(
        "/api/ground", files={"image": ("x.jpg", _jpeg(), "image/jpeg")}, data={"query": query, **fields}
    )


# ---- score and warnings -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("query", NONSENSE)
def test_a_nonsense_query_is_answered_with_its_score_and_a_warning(client: TestClient, grounder: Grounder, query):
    r = _ground(client, query)
    assert r.status_code == 200, r.text
    body = r.json()
    assert 0 < body["score"] <= 1 and len(body["box"]) == 4
    # the sentence rsvg ground prints, from the one function that decides it
    assert body["warnings"] == [grounder.query_warning(query)]
    assert "unknown to the text encoder" in body["warnings"][0]


@pytest.mark.parametrize("query", NORMAL)
def test_a_normal_query_has_a_score_and_no_warning(client: TestClient, grounder: Grounder, query):
    body = _ground(client, query).json()
    assert body["warnings"] == [] and 0 < body["score"] <= 1
    assert grounder.query_warning(query) is None


def test_unknown_words_are_counted_by_word_not_by_piece(grounder: Grounder):
    tokenizer = grounder.tokenizer
    assert unknown_word_share(tokenizer, "the ship on the left") == 0.0
    assert unknown_word_share(tokenizer, "the overpass") == 0.0  # over ##pass: a word built from word parts
    assert unknown_word_share(tokenizer, "asdkfj") == 1.0  # as ##d ##k ##f ##j: spelled out letter by letter
    assert unknown_word_share(tokenizer, "the asdkfj tank") == pytest.approx(1 / 3)  # one odd word: no warning
    assert unknown_word_share(tokenizer, "the asdkfj tank") <= UNKNOWN_QUERY_SHARE
    assert grounder.query_warning("the asdkfj tank") is None


# ---- the token count and the limits -----------------------------------------------------------------------------


def test_token_count_agrees_with_the_servers_limit_check(client: TestClient, grounder: Grounder):
    limit = grounder.max_tokens
    status = client.get("/api/status").json()
    assert status["max_tokens"] == limit and status["max_query_chars"] == MAX_QUERY_CHARS
    # queries around the limit: [CLS] + n words + [SEP]
    for words in (1, limit - 3, limit - 2, limit - 1, limit + 4):
        query = " ".join(["ship"] * words)
        count = client.post("/api/tokens", json={"query": query}).json()
        assert count["max_tokens"] == limit and count["chars"] == len(query)
        ids_mask = grounder.tokenizer.encode(" ".join(query.split()), 10_000, truncate=True)[1]
        assert count["tokens"] == sum(ids_mask) == words + 2  # the model's own tokenizer, special tokens included
        answer = _ground(client, query)
        assert count["fits"] == (count["tokens"] <= limit) == (answer.status_code == 200), (words, answer.text)
        if not count["fits"]:
            assert answer.status_code == 422 and count["detail"] == answer.json()["detail"]
            assert f"more than the model's {limit}" in count["detail"]
        else:
            assert count["detail"] is None
    # the warning is given while typing too, and the same one
    count = client.post("/api/tokens", json={"query": "asdkfj qwpeoi"}).json()
    assert count["fits"] and count["warnings"] == [grounder.query_warning("asdkfj qwpeoi")]


def test_refusals_are_sentences(client: TestClient):
    long_text = "the ship " * (MAX_QUERY_CHARS // 9 + 5)
    for query, named in [
        ("   ", "the query is empty"),
        ("the ship " * 40, "tokens, more than the model's"),
        (long_text, f"more than the {MAX_QUERY_CHARS} this server takes"),
    ]:
        answer = _ground(client, query)
        count = client.post("/api/tokens", json={"query": query}).json()
        detail = answer.json()["detail"]
        assert answer.status_code == 422 and isinstance(detail, str) and named in detail, detail
        assert not re.match(r"\d{3}", detail) and not count["fits"] and count["detail"] == detail


def test_the_page_shows_the_limits_and_sends_no_raw_status():
    page = (Path(__file__).parents[2] / "src/rsvg/web/templates/ground.html").read_text()
    query = re.search(r'<input id="query"[^>]*>', page, re.S)
    assert query and "maxlength" not in query.group(0)  # typing never stops silently: the counter says it
    assert 'id="query-count"' in page and 'id="legend-first-look"' in page
    api = (Path(__file__).parents[2] / "src/rsvg/web/static/api.js").read_text()
    assert "`${response.status}: " not in api


# ---- the heatmap's transparency --------------------------------------------------------------------------------


def test_heatmap_alpha_follows_its_values(client: TestClient):
    values = np.zeros((40, 60), np.float32)
    values[10:20, 30:50] = 1.0
    values[25:30, 5:10] = 0.5
    rgba = attention_rgba(values)
    assert rgba.shape == (40, 60, 4)
    assert (rgba[..., 3][values == 0] == 0).all()  # no heat: fully transparent
    assert (rgba[10:20, 30:50, 3] == 255).all() and (abs(rgba[25:30, 5:10, 3].astype(int) - 127) <= 1).all()
    body = _ground(client, "the ship on the left", attention="true").json()
    png = base64.b64decode(body["attention_png"].removeprefix("data:image/png;base64,"))
    sent = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
    assert sent.shape[2] == 4 and sent[..., 3].min() == 0 and sent[..., 3].max() == 255


# ---- the login page ---------------------------------------------------------------------------------------------


def _login_heading(client: TestClient, next_url: str | None) -> str:
    r = client.get("/login", params={"next": next_url} if next_url is not None else None)
    assert r.status_code == 200 and "{{" not in r.text
    return re.search(r'<h2 id="login-heading">(.*?)</h2>', r.text).group(1) + " " + r.text


def test_login_page_speaks_of_where_the_user_was_going(tmp_path: Path, grounder: Grounder):
    dataset = make_official_dataset(tmp_path / "dior_rsvg")
    AccountStore(default_db_path(dataset)).add_user("ana", "ana's password", "annotator")
    client = TestClient(create_app(dataset=dataset, grounder=grounder))
    redirect = client.get("/", follow_redirects=False)
    assert redirect.status_code == 303 and redirect.headers["location"] == "/login?next=%2F"
    ground = _login_heading(client, "/")
    assert ground.startswith("Log in to ground queries") and "grounding page" in ground
    assert "reviews a dataset" not in ground
    review = _login_heading(client, "/review")
    assert review.startswith("Log in to review") and "reviews a dataset" in review
    assert _login_heading(client, "/docs").startswith("Log in to the API")
    # no next, or one leading off this server: the login goes to the review page (login.js), and says so
    for target in (None, "//evil.test/x", "/\\evil.test/x", "https://evil.test/"):
        assert _login_heading(client, target).startswith("Log in to review"), target
    assert login_purpose("/?x=1") == "ground" and login_purpose("/review?index=3") == "review"


# ---- the image list ---------------------------------------------------------------------------------------------


def test_image_list_is_cached_by_etag(client: TestClient):
    first = client.get("/api/dataset/images")
    assert first.status_code == 200 and [im["id"] for im in first.json()] == ["00001", "00002", "00003"]
    etag = first.headers["etag"]
    assert first.headers["cache-control"] == "private, no-cache" and etag.startswith('"')
    again = client.get("/api/dataset/images", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    assert client.get("/api/dataset/images", headers={"If-None-Match": f'W/{etag}, "other"'}).status_code == 304
    stale = client.get("/api/dataset/images", headers={"If-None-Match": '"another list"'})
    assert stale.status_code == 200 and stale.content == first.content

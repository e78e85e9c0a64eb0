"""The pluggable Hugging Face tokenizer wrapper, on a tiny local WordPiece vocabulary."""

import json

import pytest

from rsvg.data.records import DatasetNotFoundError
from rsvg.data.tokenizer import HFTokenizer, QueryTokenizer, QueryTooLongError

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "red", "vehicle", "on", "left", "of", "bridge", "##s"]


@pytest.fixture
def tiny_tokenizer_dir(tmp_path):
    d = tmp_path / "tok"
    d.mkdir()
    (d / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    (d / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "BertTokenizer", "do_lower_case": True}))
    return d


def test_encode_pads_and_uses_special_tokens(tiny_tokenizer_dir):
    tok = HFTokenizer.from_pretrained(tiny_tokenizer_dir)
    assert isinstance(tok, QueryTokenizer)
    ids, mask = tok.encode("The red vehicle on the left of the bridges", max_length=14)
    v = {w: i for i, w in enumerate(VOCAB)}
    expected = [v[w] for w in ["[CLS]", "the", "red", "vehicle", "on", "the", "left", "of", "the", "bridge", "##s"]]
    assert ids[:12] == [*expected, v["[SEP]"]]
    assert ids[12:] == [v["[PAD]"]] * 2
    assert mask == [1] * 12 + [0] * 2
    assert tok.num_tokens("red vehicle") == 4
    assert tok.pad_token_id == 0


def test_long_query_is_cut_or_refused(tiny_tokenizer_dir):
    tok = HFTokenizer.from_pretrained(tiny_tokenizer_dir)
    ids, mask = tok.encode("the red vehicle on the left of the bridge", max_length=5)
    assert len(ids) == 5 and ids[0] == 2 and ids[-1] == 3 and mask == [1] * 5
    with pytest.raises(QueryTooLongError, match="11 tokens"):
        tok.encode("the red vehicle on the left of the bridge", max_length=5, truncate=False)


def test_missing_folder_says_what_to_put_where(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="bert-base-uncased"):
        HFTokenizer.from_pretrained(tmp_path / "missing")

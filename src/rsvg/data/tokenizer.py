"""Pluggable tokenizers: anything that turns a query into fixed-length token ids and a mask.

The dataset and the model only rely on :class:`QueryTokenizer`; :class:`HFTokenizer` wraps any Hugging Face
tokenizer stored in a local folder (bert-base-uncased, MiniLM, ...). Special tokens ([CLS], [SEP], [PAD])
come from the tokenizer itself. Nothing is downloaded: the folder must exist.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol, runtime_checkable

from rsvg.data.records import DatasetNotFoundError
from rsvg.errors import QueryTooLongError


def shorten(text: str, limit: int = 80) -> str:
    """The start of a long text for an error message (a 40 KB query is not repeated whole)."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


@runtime_checkable
class QueryTokenizer(Protocol):
    """Turns a query into ``max_length`` token ids and an attention mask (1 = real token, 0 = padding)."""

    def encode(self, text: str, max_length: int, truncate: bool = True) -> tuple[list[int], list[int]]: ...

    def num_tokens(self, text: str) -> int: ...


class HFTokenizer:
    """A Hugging Face tokenizer from a local folder (``tokenizer.json`` or ``vocab.txt`` + config)."""

    def __init__(self, tokenizer: object) -> None:
        self.tokenizer = tokenizer

    @classmethod
    def from_pretrained(cls, path: str | Path) -> HFTokenizer:
        from transformers import AutoTokenizer

        path = Path(path)
        if not path.is_dir():
            raise DatasetNotFoundError(
                f"tokenizer folder not found: {path} (give a local Hugging Face model folder, e.g. a copy of "
                "bert-base-uncased with vocab.txt and tokenizer_config.json; nothing is downloaded)"
            )
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        return cls(AutoTokenizer.from_pretrained(str(path), local_files_only=True))

    @property
    def pad_token_id(self) -> int:
        return int(self.tokenizer.pad_token_id)  # type: ignore[attr-defined]

    def num_tokens(self, text: str) -> int:
        """Tokens the query needs, special tokens included."""
        return len(self.tokenizer(text, add_special_tokens=True)["input_ids"])  # type: ignore[operator]

    def unknown_share(self, text: str) -> float:
        """Share of the query's tokens (special tokens left out) that the vocabulary does not know ([UNK]): a query
        in another script or language reaches the model as mostly [UNK], and any box it gives means nothing."""
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]  # type: ignore[operator]
        unk = getattr(self.tokenizer, "unk_token_id", None)
        if not ids or unk is None:
            return 0.0
        return sum(1 for i in ids if i == unk) / len(ids)

    def encode(self, text: str, max_length: int, truncate: bool = True) -> tuple[list[int], list[int]]:
        """Ids and mask padded to ``max_length``; a longer query is cut (or refused with ``truncate=False``)."""
        if not truncate:
            n = self.num_tokens(text)
            if n > max_length:
                raise QueryTooLongError(
                    f"query needs {n} tokens, more than the model's {max_length}: {shorten(text)!r}"
                )
        enc = self.tokenizer(  # type: ignore[operator]
            text, max_length=max_length, padding="max_length", truncation=True, add_special_tokens=True
        )
        return list(enc["input_ids"]), list(enc["attention_mask"])

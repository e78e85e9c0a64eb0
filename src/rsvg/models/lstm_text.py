"""A BiLSTM text encoder on a vocabulary learned from the training split: the text model of the LSTM rows of the
paper's Table II (FAOA-LSTM; LBYL-Net-LSTM).

As the references build it (zyang-ur/onestage_grounding @ 2fff0943c3bc, ``RNNEncoder``; ``table2_models.md``):
a word embedding of 512 learned from scratch (no pretrained vectors), input dropout, Linear 512→512 + ReLU, one
bidirectional LSTM layer of 512 per direction; 4,465,152 + 512·V parameters for a vocabulary of V words.

* :class:`WordTokenizer` — words are the lowercase runs of letters and digits; id 0 pads, id 1 is a word the
  vocabulary does not know; no special tokens (the references' LSTM reads the words alone);
* :func:`build_vocabulary` — the training split's words, most frequent first;
* :class:`LSTMTextEncoder` — the encoder, with the interface of :class:`~rsvg.models.text_encoder.TextEncoder`
  that the trainer and the checkpoints use. Its vocabulary lives in the model's config, so a checkpoint's
  ``config.json`` rebuilds it; its ``text/`` folder holds ``vocabulary.txt`` for people to read.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rsvg.data.tokenizer import QueryTooLongError, shorten

__all__ = ["LSTMTextEncoder", "WordTokenizer", "build_vocabulary", "words_of"]

PAD, UNKNOWN = "<pad>", "<unk>"
_WORD = re.compile(r"[a-z0-9]+")


def words_of(text: str) -> list[str]:
    """The query's words: its lowercase runs of letters and digits."""
    return _WORD.findall(text.lower())


def build_vocabulary(queries: Iterable[str]) -> list[str]:
    """Every word of ``queries``, most frequent first (ties alphabetical): the same list for the same split."""
    counts = Counter(w for q in queries for w in words_of(q))
    return sorted(counts, key=lambda w: (-counts[w], w))


class WordTokenizer:
    """Query → word ids and mask, padded to ``max_length`` (the tokenizer interface of :mod:`rsvg.data.tokenizer`)."""

    def __init__(self, vocabulary: Sequence[str]) -> None:
        self.index = {w: i + 2 for i, w in enumerate(vocabulary)}
        self.pad_token_id = 0
        self.unknown_id = 1

    def num_tokens(self, text: str) -> int:
        return len(words_of(text))

    def unknown_share(self, text: str) -> float:
        """Share of the query's words the vocabulary does not know."""
        words = words_of(text)
        return sum(w not in self.index for w in words) / len(words) if words else 0.0

    def encode(self, text: str, max_length: int, truncate: bool = True) -> tuple[list[int], list[int]]:
        """Ids and mask padded to ``max_length``; a longer query is cut (or refused with ``truncate=False``). A
        query without a word gets one unknown word, so that every query has a token to read."""
        ids = [self.index.get(w, self.unknown_id) for w in words_of(text)] or [self.unknown_id]
        if len(ids) > max_length and not truncate:
            raise QueryTooLongError(
                f"query needs {len(ids)} words, more than the model's {max_length}: {shorten(text)!r}"
            )
        ids = ids[:max_length]
        pad = max_length - len(ids)
        return ids + [self.pad_token_id] * pad, [1] * len(ids) + [0] * pad


class VocabularyText:
    """What the trainer, the grounder and the checkpoints ask of a text model on a word vocabulary (the LSTM rows',
    ZSGNet's): its tokenizer, no precomputed features, and the vocabulary as its checkpoint files. Nothing in it is
    pretrained to rate apart, it is never frozen as a whole, and nothing is cached."""

    vocabulary: list[str]
    pretrained_names: frozenset[str] = frozenset()
    frozen = False
    cache_enabled = False

    def tokenizer(self) -> WordTokenizer:
        return WordTokenizer(self.vocabulary)

    def precompute(self, queries: Iterable[Sequence[int]], batch_size: int = 64) -> int:
        """Nothing to precompute: the text model trains."""
        return 0

    def checkpoint_files(self) -> dict[str, bytes]:
        """What a checkpoint's ``text/`` folder holds: the vocabulary, one word per line (ids from 2)."""
        return {"vocabulary.txt": "".join(f"{w}\n" for w in self.vocabulary).encode()}


class LSTMTextEncoder(VocabularyText, nn.Module):
    """Embedding → dropout → Linear + ReLU → BiLSTM. ``forward`` gives the per-word outputs ``(B, Nt, 2·hidden)``
    and a sentence feature: ``last`` (the output at the last word, FAOA's) or ``final`` (the two directions' final
    hidden states, LBYL-Net's)."""

    def __init__(
        self,
        vocabulary: Sequence[str],
        embedding: int = 512,
        hidden: int = 512,
        input_dropout: float = 0.2,
        sentence: str = "last",
    ) -> None:
        super().__init__()
        if sentence not in ("last", "final"):
            raise ValueError(f"sentence must be last or final, got {sentence!r}")
        self.vocabulary = list(vocabulary)
        self.embedding = nn.Embedding(len(self.vocabulary) + 2, embedding)
        self.input_dropout = nn.Dropout(input_dropout)
        self.mlp = nn.Sequential(nn.Linear(embedding, hidden), nn.ReLU())
        self.rnn = nn.LSTM(hidden, hidden, 1, batch_first=True, bidirectional=True)
        self.hidden_size = 2 * hidden
        self.sentence = sentence

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> tuple[Tensor, Tensor]:
        lengths = attention_mask.sum(1).clamp(min=1)
        x = self.mlp(self.input_dropout(self.embedding(input_ids)))
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        output, (h_n, _) = self.rnn(packed)
        words, _ = pad_packed_sequence(output, batch_first=True, total_length=input_ids.shape[1])
        if self.sentence == "final":
            sentence = torch.cat([h_n[0], h_n[1]], 1)
        else:
            sentence = words[torch.arange(len(words), device=words.device), lengths - 1]
        return words, sentence

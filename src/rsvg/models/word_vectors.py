"""ZSGNet's text model: fixed word vectors read from a file the user names, through a BiLSTM.

The reference embeds each word with spaCy's 300-d vectors (``token.vector``; a word without one gets zeros) and never
trains them. rsvg reads the vectors of the training split's words from a GloVe or word2vec text file (one word and
its numbers per line; word2vec's first line, two numbers, is skipped), keeps them in the model (so a checkpoint needs
no file) and leaves them fixed; ``learn`` trains embeddings from random instead, ``random`` fixes random ones (shape
and speed checks). The reference draws the LSTM's initial state at random on every forward, evaluation included;
rsvg starts it from zeros, so an answer does not change from one call to the next.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rsvg.errors import ConfigError
from rsvg.models.lstm_text import VocabularyText

__all__ = ["WordVectorLSTM", "read_word_vectors"]


def read_word_vectors(path: str | Path, vocabulary: Sequence[str], dim: int) -> tuple[Tensor, int]:
    """``(len(vocabulary), dim)``: each word's vector from the text file at ``path`` (zeros for a word it lacks), and
    how many words it had. A line whose numbers are not ``dim`` is an error naming the file and the line."""
    wanted = {w: i for i, w in enumerate(vocabulary)}
    table = torch.zeros(len(vocabulary), dim)
    found = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            parts = line.rstrip().split(" ")
            if number == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                continue  # word2vec's header: count and dimension
            # GloVe's 840B file has a few words holding spaces: the vector is the last dim numbers
            word = (" ".join(parts[:-dim]) if len(parts) > dim else parts[0]).lower()
            if word not in wanted:
                continue
            if len(parts) <= dim:
                raise ConfigError(f"{path}, line {number}: expected a word and {dim} numbers (model.emb_dim)")
            try:
                table[wanted.pop(word)] = torch.tensor([float(v) for v in parts[-dim:]])
            except ValueError:
                raise ConfigError(f"{path}, line {number}: not a word followed by {dim} numbers") from None
            found += 1
            if not wanted:
                break
    return table, found


class WordVectorLSTM(VocabularyText, nn.Module):
    """Word vectors (ids from 2: 0 pads, 1 is an unknown word, whose vector is zeros) → BiLSTM. ``forward`` gives the
    per-word outputs ``(B, Nt, 2·hidden)`` and the sentence: both directions' outputs at the query's last word, as
    the reference reads it."""

    def __init__(self, vocabulary: Sequence[str], dim: int = 300, hidden: int = 128, trainable: bool = False) -> None:
        super().__init__()
        self.vocabulary = list(vocabulary)
        self.embedding = nn.Embedding(len(self.vocabulary) + 2, dim, padding_idx=0)
        with torch.no_grad():
            self.embedding.weight[:2] = 0.0
        self.embedding.weight.requires_grad_(trainable)
        self.rnn = nn.LSTM(dim, hidden, batch_first=True, bidirectional=True)
        self.hidden_size = 2 * hidden
        self.loaded: str | None = None  # what the vectors came from (set by load_vectors)

    def load_vectors(self, path: str | Path) -> str:
        """Fill the vocabulary's vectors from the text file at ``path``; a line saying how many it found."""
        table, found = read_word_vectors(path, self.vocabulary, self.embedding.embedding_dim)
        with torch.no_grad():
            self.embedding.weight[2:] = table
        self.loaded = f"word vectors from {path}: {found} of the {len(self.vocabulary)} words (the rest zeros)"
        return self.loaded

    def random_vectors(self, generator: torch.Generator | None = None) -> None:
        """Random fixed vectors (shape and speed checks; ``model.word_vectors: random``)."""
        with torch.no_grad():
            shape = (len(self.vocabulary), self.embedding.embedding_dim)
            self.embedding.weight[2:] = torch.randn(*shape, generator=generator)

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> tuple[Tensor, Tensor]:
        lengths = attention_mask.sum(1).clamp(min=1)
        packed = pack_padded_sequence(self.embedding(input_ids), lengths.cpu(), batch_first=True, enforce_sorted=False)
        output, _ = self.rnn(packed)  # the initial state is zeros
        words, _ = pad_packed_sequence(output, batch_first=True, total_length=input_ids.shape[1])
        sentence = words[torch.arange(len(words), device=words.device), lengths - 1]
        return words, sentence

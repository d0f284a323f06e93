"""The shapes world's text side: the BPE tokenizer (a real ``CLIPTokenizer``) and the tiny CLIP.

Checked against peers and identities: the byte table equals transformers' own, the shipped vocabulary is what
``save_tokenizer`` writes today, every caption round-trips, our contrastive loss equals ``CLIPModel``'s, and the
shipped CLIP finds captions and attributes far above chance on renders it never saw.
"""

from __future__ import annotations

import warnings

import pytest
import torch

from course_lib.data import COLOURS, POSITIONS, SHAPES, SIZES, caption, shapes
from course_lib.text import (
    BOS,
    EOS,
    TOKENIZER_DIR,
    bytes_to_unicode,
    learn_bpe,
    load_tokenizer,
    save_tokenizer,
    shapes_words,
    tokenize,
)


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer()


def test_byte_table_is_clips():
    from transformers.convert_slow_tokenizer import bytes_to_unicode as reference

    assert bytes_to_unicode() == reference()
    assert len(set(bytes_to_unicode().values())) == 256


def test_shipped_vocabulary_is_what_the_code_writes(tmp_path):
    save_tokenizer(tmp_path)
    for name in ("vocab.json", "merges.txt"):
        assert (tmp_path / name).read_text() == (TOKENIZER_DIR / name).read_text(), name


def test_learn_bpe_merges_the_most_frequent_pair_first():
    merges = learn_bpe({"low": 5, "lower": 2, "newest": 6, "widest": 3})
    # "e s" and "s t</w>" both occur 6 + 3 = 9 times (newest, widest), more than any other pair; the tie goes to the
    # larger pair, then "e" joins "st</w>" (9 again)
    assert merges[:2] == [("s", "t</w>"), ("e", "st</w>")]
    assert {a + b for a, b in merges} >= {w + "</w>" for w in ("low", "lower", "newest", "widest")}  # whole words


def test_every_caption_round_trips_one_token_per_word(tokenizer):
    prompts = [
        caption(s, c, z, p)
        for s in range(len(SHAPES))
        for c in range(len(COLOURS))
        for z in range(len(SIZES))
        for p in range(len(POSITIONS))
    ]
    for prompt in prompts:
        ids = tokenizer(prompt).input_ids
        assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id
        assert len(ids) == len(prompt.split()) + 2, (prompt, tokenizer.convert_ids_to_tokens(ids))
        assert tokenizer.decode(ids, skip_special_tokens=True) == prompt
    assert {w + "</w>" for w in shapes_words()} <= set(tokenizer.get_vocab())


def test_a_rare_word_splits_and_the_empty_prompt_is_bos_eos(tokenizer):
    pieces = tokenizer.tokenize("sks")
    assert len(pieces) >= 2 and "".join(pieces).replace("</w>", "") == "sks", pieces
    assert tokenizer("").input_ids == [tokenizer.convert_tokens_to_ids(BOS), tokenizer.convert_tokens_to_ids(EOS)]


def test_tokenize_pads_truncates_with_a_warning_and_refuses_bad_input(tokenizer):
    batch = tokenize(tokenizer, ["a large red circle at the top left", ""])
    assert batch["input_ids"].shape == (2, tokenizer.model_max_length)
    assert batch["attention_mask"].sum(1).tolist() == [10, 2]
    with pytest.warns(UserWarning, match="cut off"):
        tokenize(tokenizer, [" ".join(["red"] * 40)])
    with pytest.raises(ValueError, match="wrap one prompt"):
        tokenize(tokenizer, "a red circle")
    with pytest.raises(ValueError, match="no prompts"):
        tokenize(tokenizer, [])


def test_contrastive_loss_equals_clipmodels(tokenizer):
    from transformers import CLIPModel

    from course_lib.clip import clip_loss_fn, tiny_clip_config

    torch.manual_seed(0)
    model = CLIPModel(tiny_clip_config(tokenizer))
    data = shapes(16, seed=3)
    tokens = tokenize(tokenizer, list(data.captions))
    reference = model(**tokens, pixel_values=data.images, return_loss=True).loss
    ours = clip_loss_fn()(model, (tokens["input_ids"], tokens["attention_mask"], data.images))
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-6)


def test_shipped_clip_reads_held_out_renders(tokenizer):
    from course_lib.clip import clip_score, load_clip, retrieval_accuracy, zero_shot_attributes

    model = load_clip()
    test = shapes(300, seed=777)
    captions = list(test.captions)
    zero_shot = zero_shot_attributes(model, tokenizer, test.images, captions)
    chance = {"shape": 1 / 6, "colour": 1 / 6, "size": 1 / 2, "position": 1 / 5}
    assert all(zero_shot[k] > 0.5 * (1 + chance[k]) for k in chance), zero_shot  # halfway from chance to 1, at least
    assert retrieval_accuracy(model, tokenizer, test.images, captions) > 0.2  # chance: about 1/300
    shuffled = captions[1:] + captions[:1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert (
            clip_score(model, tokenizer, test.images, captions).mean()
            > clip_score(model, tokenizer, test.images, shuffled).mean() + 0.1
        )


def test_prompt_diversity_is_zero_for_copies_and_grows_with_variety():
    from course_lib.clip import load_clip, prompt_diversity
    from course_lib.data import render_captions

    model = load_clip()
    captions = ["a large red circle at the top left"] * 4 + ["a small blue star at the center"] * 4
    copies = render_captions(captions[:1], seed=0).repeat(8, 1, 1, 1)
    assert prompt_diversity(model, copies, captions) < 1e-5
    jittered = prompt_diversity(model, render_captions(captions, seed=0), captions)
    mixed = prompt_diversity(model, shapes(8, seed=3).images, captions)  # unrelated images under each prompt
    assert 0 < jittered < mixed
    with pytest.raises(ValueError, match="one image"):
        prompt_diversity(model, copies[:2], captions[:1] + captions[4:5])

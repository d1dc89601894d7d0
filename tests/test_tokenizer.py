"""GPT-2's tokenizer, checked with the real vocabulary bundled in minigpt/data/gpt2-tokenizer/."""

from __future__ import annotations

import functools
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import tokenizers
from checkpoints import FAKE_CHECKPOINT, build, make_cached_snapshot
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import require_reference
from tokenizers import AddedToken, decoders, models, pre_tokenizers

import minigpt
from minigpt.config import GPT2Config
from minigpt.errors import MiniGPTError
from minigpt.hub import HUB_REPOS
from minigpt.installation import checkpoints_dir, data_dir
from minigpt.tokenizer import (
    BUNDLED_GPT2_DIR,
    byte_to_char_table,
    load_tokenizer,
    tokenizer_dir_for,
)

VOCAB = BUNDLED_GPT2_DIR / "vocab.json"
MERGES = BUNDLED_GPT2_DIR / "merges.txt"
EOS = "<|endoftext|>"

# Texts that exercise every kind of chunk GPT-2's pre-tokenizer makes, and multi-byte UTF-8.
VARIED_TEXTS = [
    "I have a dream",
    "The dog",
    " Hello world",
    "Hello world ",
    "",
    " ",
    "don't, I'll, we've, they're, she'd, I'm, it's",
    "DON'T SHOUT'S",
    "3.14159 and 1,000,000 and 2024-06-01",
    "a   b\n\n\tc  \n",
    "   leading and trailing   ",
    "café naïve Ångström façade jalapeño",
    "你好，世界。日本語のテキスト、한국어 문장",
    "emoji 🙂👍🏽 family 👨‍👩‍👧 flag 🇫🇷",
    "Ελληνικά, русский, עברית, العربية",
    "def f(x):\n    return x ** 2  # square\n",
    "https://example.com/path?q=1&r=2#frag",
    "control \x00\x01\x7f chars and \u200b zero width",
    "a<|endoftext|>b",
    " <|endoftext|> x",
    "<|endoftext|><|endoftext|>",
    "<|endoftext|",
    "<|endoftext|>The next document",
]


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer(BUNDLED_GPT2_DIR)


def save_tokenizer_json(directory: Path, register_eos: bool = True) -> Path:
    """Write GPT-2's tokenizer as one tokenizer.json, built here with the library directly."""
    backend = tokenizers.Tokenizer(models.BPE.from_file(str(VOCAB), str(MERGES)))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    if register_eos:
        backend.add_special_tokens([AddedToken(EOS, special=True)])
    directory.mkdir(parents=True, exist_ok=True)
    backend.save(str(directory / "tokenizer.json"))
    return directory


# -- Known ids --------------------------------------------------------------------------------


def test_known_ids(tok):
    assert tok.encode("I have a dream") == [40, 423, 257, 4320]
    assert tok.encode("The dog") == [464, 3290]
    # A leading space belongs to the word: "Hello" and " Hello" are different tokens.
    assert tok.encode("Hello world") == [15496, 995]
    assert tok.encode(" Hello world") == [18435, 995]


def test_sizes_and_eos(tok):
    assert tok.vocab_size == 50257
    assert tok.eos_token_id == 50256


def test_literal_endoftext_is_one_token(tok):
    assert tok.encode(EOS) == [50256]
    assert tok.encode("a" + EOS + "b") == [64, 50256, 65]
    assert tok.decode([50256]) == EOS
    # An incomplete marker is ordinary text.
    assert 50256 not in tok.encode("<|endoftext|")


def test_decode_accepts_numpy_ids(tok):
    assert tok.decode(np.array([40, 423, 257, 4320])) == "I have a dream"


# -- Round trips ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Plain ASCII, with punctuation: yes!?",
        "café naïve Ångström façade",
        "你好，世界。日本語のテキスト",
        "emoji 🙂👍🏽 family 👨‍👩‍👧",
        "\t\n  mixed   whitespace \r\n",
    ],
)
def test_round_trip_examples(tok, text):
    ids = tok.encode(text)
    assert all(0 <= i < tok.vocab_size for i in ids)
    assert tok.decode(ids) == text


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_round_trip_any_text(tok, text):
    """decode(encode(s)) == s for any Unicode string: byte-level BPE loses nothing."""
    assert tok.decode(tok.encode(text)) == text


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_token_bytes_spell_the_utf8(tok, text):
    """The tokens' raw bytes, concatenated, are exactly the text's UTF-8 bytes."""
    ids = tok.encode(text)
    assert b"".join(tok.token_bytes(i) for i in ids) == text.encode("utf-8")


def test_byte_table_is_gpt2s():
    table = byte_to_char_table()
    assert sorted(table) == list(range(256))
    assert len(set(table.values())) == 256  # one character per byte, so it inverts
    # The library's byte-level alphabet is the same 256 characters.
    assert set(table.values()) == set(pre_tokenizers.ByteLevel.alphabet())
    assert (table[ord(" ")], table[ord("\n")], table[ord("!")]) == ("Ġ", "Ċ", "!")


# -- Streaming --------------------------------------------------------------------------------


def test_stream_holds_back_split_characters(tok):
    ids = tok.encode("你好")
    assert len(ids) == 4  # each character is split over two tokens
    assert all("\ufffd" in tok.decode([i]) for i in ids)  # one token alone is not text
    assert list(tok.decode_stream(ids)) == ["你", "好"]


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_stream_of_text_never_splits_a_character(tok, text):
    """Streaming valid text emits no U+FFFD, holds back only an incomplete tail, and adds up."""
    ids = tok.encode(text)
    stream = tok.stream_decoder()
    emitted, consumed = "", b""
    for token_id in ids:
        piece = stream.push(token_id)
        assert "\ufffd" not in piece or "\ufffd" in text
        emitted += piece
        consumed += tok.token_bytes(token_id)
        # Everything complete so far is out; only an incomplete tail (< 4 bytes) is held.
        assert emitted == consumed.decode("utf-8", errors="ignore")
        assert len(consumed) - len(emitted.encode("utf-8")) < 4
    assert emitted + stream.finish() == text
    assert "".join(tok.decode_stream(ids)) == text


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 50256), max_size=30))
def test_stream_of_any_ids_adds_up_to_decode(tok, ids):
    """For any ids, even ones that are not valid UTF-8, the streamed pieces join to decode()."""
    pieces = list(tok.decode_stream(ids))
    assert all(pieces)  # nothing empty is yielded
    assert "".join(pieces) == tok.decode(ids)


# -- Both file forms, and model directories ---------------------------------------------------


def test_tokenizer_json_matches_vocab_and_merges(tok, tmp_path):
    from_json = load_tokenizer(save_tokenizer_json(tmp_path / "json"))
    assert (from_json.vocab_size, from_json.eos_token_id) == (tok.vocab_size, tok.eos_token_id)
    for text in VARIED_TEXTS:
        ids = tok.encode(text)
        assert from_json.encode(text) == ids, text
        assert from_json.decode(ids) == tok.decode(ids)


def test_tokenizer_json_without_special_token_still_splits_endoftext(tmp_path):
    from_json = load_tokenizer(save_tokenizer_json(tmp_path, register_eos=False))
    assert from_json.encode("a" + EOS) == [64, 50256]


def test_tokenizer_json_is_preferred(tmp_path):
    save_tokenizer_json(tmp_path)
    (tmp_path / "vocab.json").write_text("not json")  # would fail if it were read
    (tmp_path / "merges.txt").write_text("")
    assert load_tokenizer(tmp_path).encode("The dog") == [464, 3290]


def test_model_dir_with_gpt2_vocab_size_falls_back_to_bundled(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"vocab_size": 50257, "n_layer": 2}))
    assert tokenizer_dir_for(tmp_path) == BUNDLED_GPT2_DIR
    assert load_tokenizer(tmp_path).encode("The dog") == [464, 3290]


def test_model_dir_with_own_files_uses_them(tmp_path):
    shutil.copy(VOCAB, tmp_path / "vocab.json")
    shutil.copy(MERGES, tmp_path / "merges.txt")
    (tmp_path / "config.json").write_text(json.dumps({"vocab_size": 50257}))
    assert tokenizer_dir_for(tmp_path) == tmp_path


@pytest.mark.parametrize("config", [{"vocab_size": 1000}, None])
def test_model_dir_without_gpt2_vocab_size_has_no_tokenizer(tmp_path, config):
    if config is not None:
        (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(MiniGPTError, match="no tokenizer.json or vocab.json"):
        load_tokenizer(tmp_path)


# -- Names and tokenizer-only directories: no weights needed ---------------------------------


@pytest.fixture
def no_downloads(tmp_path, monkeypatch):
    """An empty checkpoints directory and an empty Hugging Face cache: no weights anywhere."""
    monkeypatch.setenv("MINIGPT_HOME", str(tmp_path / "checkpoints"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    work = tmp_path / "work"  # a working directory with nothing in it, away from the repo
    work.mkdir()
    monkeypatch.chdir(work)
    return tmp_path


@pytest.mark.parametrize("name", [*HUB_REPOS, "openai-community/gpt2", "distilbert/distilgpt2"])
def test_a_published_name_needs_no_weights(no_downloads, name):
    tok = minigpt.load_tokenizer(name)
    assert tok.source == str(BUNDLED_GPT2_DIR)
    assert tok.encode("I have a dream") == [40, 423, 257, 4320]


def test_a_downloaded_model_without_tokenizer_files_uses_the_bundled_vocabulary(no_downloads):
    build(checkpoints_dir() / "gpt2", GPT2Config(n_layer=1, n_head=2, n_embd=16, n_positions=8))
    assert minigpt.load_tokenizer("gpt2").source == str(BUNDLED_GPT2_DIR)


@pytest.mark.parametrize(
    "files", [FAKE_CHECKPOINT, {"config.json": b"{}"}, {"README.md": b"# gpt2"}]
)
def test_a_cached_snapshot_without_tokenizer_files_falls_back_to_the_bundled_one(
    no_downloads, files
):
    """Whatever else the snapshot holds or lacks (weights, a config.json without vocab_size),
    gpt2's vocabulary is known: no message about weights or configs."""
    make_cached_snapshot(no_downloads / "hf", "openai-community/gpt2", "a" * 40, files, main=True)
    tok = minigpt.load_tokenizer("gpt2")
    assert (tok.source, tok.vocab_size) == (str(BUNDLED_GPT2_DIR), 50257)


def test_a_cached_snapshot_with_tokenizer_files_is_used(no_downloads):
    """What transformers' AutoTokenizer.from_pretrained("gpt2") leaves: tokenizer files only."""
    save_tokenizer_json(no_downloads / "made")
    files = {"tokenizer.json": (no_downloads / "made" / "tokenizer.json").read_bytes()}
    snapshot = make_cached_snapshot(no_downloads / "hf", "gpt2", "b" * 40, files, main=True)
    tok = minigpt.load_tokenizer("gpt2")
    assert tok.source == str(snapshot)
    assert tok.encode("The dog") == [464, 3290]


def test_the_bundled_model_name_gives_its_own_tokenizer(no_downloads):
    tok = minigpt.load_tokenizer("minigpt-tiny")
    assert tok.source == str(data_dir("minigpt-tiny"))
    assert tok.vocab_size == 1478


def test_a_tokenizer_json_directory_without_config_or_weights(tmp_path):
    directory = save_tokenizer_json(tmp_path / "only-tokenizer-json")
    assert sorted(p.name for p in directory.iterdir()) == ["tokenizer.json"]
    assert minigpt.load_tokenizer(directory).encode("The dog") == [464, 3290]


def test_a_vocab_and_merges_directory_without_config_or_weights(tmp_path):
    shutil.copy(VOCAB, tmp_path / "vocab.json")
    shutil.copy(MERGES, tmp_path / "merges.txt")
    tok = minigpt.load_tokenizer(tmp_path)
    assert tok.source == str(tmp_path)
    assert tok.encode("The dog") == [464, 3290]


def test_a_tokenizer_only_folder_in_the_checkpoints_directory_is_a_name(no_downloads):
    save_tokenizer_json(checkpoints_dir() / "my-tokenizer")
    tok = minigpt.load_tokenizer("my-tokenizer")
    assert tok.source == str(checkpoints_dir() / "my-tokenizer")


def test_an_unknown_name_lists_the_known_ones(no_downloads):
    message = one_line_error(lambda: minigpt.load_tokenizer("gpt-5"), "unknown model 'gpt-5'")
    assert message.startswith("tokenizer: ") and "gpt2" in message and "minigpt-tiny" in message


# -- Bad input --------------------------------------------------------------------------------


def one_line_error(call, match: str) -> str:
    """Run `call`, expect a MiniGPTError whose single-line message matches `match`."""
    with pytest.raises(MiniGPTError, match=match) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    return message


def write_files(directory: Path, vocab: str, merges: str) -> Path:
    (directory / "vocab.json").write_text(vocab, encoding="utf-8")
    (directory / "merges.txt").write_text(merges, encoding="utf-8")
    return directory


def test_missing_directory(tmp_path):
    one_line_error(lambda: load_tokenizer(tmp_path / "nope"), "no such directory")
    one_line_error(lambda: tokenizer_dir_for(tmp_path / "nope"), "not a directory")


def test_file_instead_of_directory():
    message = one_line_error(lambda: load_tokenizer(VOCAB), "vocab.json is a file")
    assert f"pass the directory that holds it ({VOCAB.parent})" in message


def test_only_one_of_the_two_files(tmp_path):
    shutil.copy(VOCAB, tmp_path / "vocab.json")
    one_line_error(lambda: load_tokenizer(tmp_path), "no tokenizer.json or vocab.json")


def test_truncated_vocab(tmp_path):
    truncated = VOCAB.read_text(encoding="utf-8")[:5000]
    write_files(tmp_path, truncated, MERGES.read_text(encoding="utf-8"))
    one_line_error(lambda: load_tokenizer(tmp_path), "malformed files")


@pytest.mark.parametrize("bad_line", ["lonely", "Ġ NOT_A_TOKEN"])
def test_bad_merges_line(tmp_path, bad_line):
    merges = MERGES.read_text(encoding="utf-8").splitlines()
    merges.insert(10, bad_line)
    write_files(tmp_path, VOCAB.read_text(encoding="utf-8"), "\n".join(merges) + "\n")
    one_line_error(lambda: load_tokenizer(tmp_path), "malformed files")


def test_malformed_tokenizer_json(tmp_path):
    (tmp_path / "tokenizer.json").write_text('{"model": ')
    one_line_error(lambda: load_tokenizer(tmp_path), "malformed files")


def test_not_byte_level(tmp_path):
    word_level = tokenizers.Tokenizer(models.WordLevel({"a": 0, "[UNK]": 1}, unk_token="[UNK]"))
    word_level.save(str(tmp_path / "tokenizer.json"))
    one_line_error(lambda: load_tokenizer(tmp_path), "not a byte-level BPE")


def test_vocab_without_all_bytes(tmp_path):
    write_files(tmp_path, json.dumps({"a": 0, "b": 1, "ab": 2}), "#version: 0.2\na b\n")
    one_line_error(lambda: load_tokenizer(tmp_path), "lacks 254 of the 256 byte symbols")


def test_bad_model_config(tmp_path):
    (tmp_path / "config.json").write_text("{ not json")
    one_line_error(lambda: load_tokenizer(tmp_path), "cannot read vocab_size")


@pytest.mark.parametrize(
    ("ids", "match"),
    [
        ([40, 50257], "token id 50257 at position 1 is outside the vocabulary"),
        ([-1], "token id -1 at position 0 is outside the vocabulary"),
        ([40, 1.5], "position 1 must be an integer"),
        (["40"], "position 0 must be an integer"),
        ("I have", "expected a list of token ids"),
    ],
)
def test_decode_bad_ids(tok, ids, match):
    one_line_error(lambda: tok.decode(ids), match)


def test_stream_bad_id(tok):
    one_line_error(lambda: list(tok.decode_stream([40, 99999])), "outside the vocabulary")


def test_encode_non_text(tok):
    one_line_error(lambda: tok.encode(b"bytes"), "expected a str, got bytes")


# -- Reference parity (transformers), and an independent plain-Python BPE ---------------------


@pytest.fixture(scope="module")
def hf_tokenizers():
    _, transformers = require_reference()
    # In transformers 5 both names are the same tokenizers-backed class; in 4.x the second
    # is the separate pure-Python implementation.
    return [
        transformers.GPT2TokenizerFast(str(VOCAB), str(MERGES)),
        transformers.GPT2Tokenizer(str(VOCAB), str(MERGES)),
    ]


@functools.cache
def vocab_and_merge_ranks() -> tuple[dict[str, int], dict[tuple[str, str], int]]:
    vocab = json.loads(VOCAB.read_text(encoding="utf-8"))
    merge_lines = MERGES.read_text(encoding="utf-8").splitlines()[1:]  # skip "#version: 0.2"
    return vocab, {tuple(line.split()): r for r, line in enumerate(merge_lines)}


def plain_python_bpe(text: str) -> list[int]:
    """GPT-2's encoding written out in plain Python: an independent check of the library."""
    import regex  # installed with transformers

    vocab, rank = vocab_and_merge_ranks()
    chunk_pattern = regex.compile(
        r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
    )
    table = byte_to_char_table()
    ids: list[int] = []
    for n, document in enumerate(text.split(EOS)):
        if n > 0:
            ids.append(vocab[EOS])
        for chunk in chunk_pattern.findall(document):
            symbols = [table[b] for b in chunk.encode("utf-8")]
            while len(symbols) > 1:
                pairs = list(zip(symbols, symbols[1:]))
                best = min(range(len(pairs)), key=lambda i: rank.get(pairs[i], math.inf))
                if pairs[best] not in rank:
                    break
                symbols[best : best + 2] = [symbols[best] + symbols[best + 1]]
            ids.extend(vocab[s] for s in symbols)
    return ids


@pytest.mark.reference
def test_matches_transformers_on_varied_texts(tok, hf_tokenizers):
    for hf in hf_tokenizers:
        for text in VARIED_TEXTS:
            ids = tok.encode(text)
            assert ids == hf.encode(text), (type(hf).__name__, text)
            assert tok.decode(ids) == hf.decode(ids), (type(hf).__name__, text)


@pytest.mark.reference
@settings(max_examples=100, deadline=None)
@given(st.text())
def test_matches_transformers_on_any_text(tok, hf_tokenizers, text):
    """Our encode and decode equal Hugging Face's GPT-2 tokenizer on arbitrary Unicode."""
    for hf in hf_tokenizers:
        assert tok.encode(text) == hf.encode(text)
        assert tok.decode(tok.encode(text)) == hf.decode(hf.encode(text))


@pytest.mark.reference
def test_matches_plain_python_bpe(tok):
    require_reference()
    for text in VARIED_TEXTS:
        assert tok.encode(text) == plain_python_bpe(text), text

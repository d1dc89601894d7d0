"""GPT-2's tokenizer: byte-level BPE, run by the `tokenizers` library.

Text becomes ids in three steps:
1. UTF-8 bytes. Every string is a byte sequence, so nothing is ever "unknown".
2. Each byte is shown as one printable character (space -> "Ġ", newline -> "Ċ"), so that
   the BPE vocabulary can be stored as ordinary strings in vocab.json.
3. A regex splits the text into word-like chunks, and BPE merges adjacent symbols inside each
   chunk, most frequent pair first (merges.txt lists the pairs in priority order).

Decoding runs backwards: id -> token string -> bytes -> UTF-8 text. One token may hold only
part of a multi-byte character (an emoji is 4 bytes, often split over 2 tokens), which is why
streaming output must hold back an incomplete tail; see `StreamDecoder`.

>>> tok = load_tokenizer("gpt2")  # GPT-2's vocabulary, bundled: no weights needed
>>> tok.encode("I have a dream")
[40, 423, 257, 4320]
>>> tok.decode([40, 423, 257, 4320])
'I have a dream'
"""

from __future__ import annotations

import codecs
import json
import operator
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import tokenizers
from tokenizers import AddedToken, decoders, models, pre_tokenizers

from minigpt import hub
from minigpt.errors import MiniGPTError
from minigpt.installation import data_dir

EOS_TOKEN = "<|endoftext|>"
GPT2_VOCAB_SIZE = 50257
# The real GPT-2 vocabulary, shipped inside the package (see its README.md for where from).
BUNDLED_GPT2_DIR = data_dir("gpt2-tokenizer")


def byte_to_char_table() -> dict[int, str]:
    """GPT-2's map from each of the 256 byte values to one printable character.

    Bytes that already print as themselves keep their code point; the other 68 (control
    characters, space, a few Latin-1 oddities) are moved, in byte order, to 256, 257, ...

    >>> table = byte_to_char_table()
    >>> table[ord("A")], table[ord(" ")], table[ord("\\n")]
    ('A', 'Ġ', 'Ċ')
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    table = {b: chr(b) for b in printable}
    moved = [b for b in range(256) if b not in table]
    for n, b in enumerate(moved):
        table[b] = chr(256 + n)
    return dict(sorted(table.items()))


CHAR_TO_BYTE = {char: byte for byte, char in byte_to_char_table().items()}


class Tokenizer:
    """GPT-2 byte-level BPE: `encode` text to ids, `decode` ids to text.

    Build one with `load_tokenizer(directory or name)`. `<|endoftext|>` written literally in
    the text encodes to its single id, as Hugging Face's GPT2TokenizerFast does.

    >>> tok = load_tokenizer("gpt2")
    >>> tok.vocab_size, tok.eos_token_id
    (50257, 50256)
    >>> tok.encode("The dog<|endoftext|>")
    [464, 3290, 50256]
    """

    def __init__(self, backend: tokenizers.Tokenizer, source: str = "<memory>"):
        self._backend = backend
        self.source = source  # where the files came from, for error messages
        self.vocab_size: int = backend.get_vocab_size(with_added_tokens=True)
        # None for a vocabulary without <|endoftext|> (not GPT-2's).
        self.eos_token_id: int | None = backend.token_to_id(EOS_TOKEN)

    def __repr__(self) -> str:
        return f"Tokenizer(vocab_size={self.vocab_size}, source={self.source!r})"

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`; no tokens are added at either end.

        >>> load_tokenizer("gpt2").encode(" Hello world")
        [18435, 995]
        """
        if not isinstance(text, str):
            raise MiniGPTError(f"encode: expected a str, got {type(text).__name__}")
        check_encodable(text)
        return self._backend.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Sequence[int]) -> str:
        """The text of `ids`. Bytes that do not form valid UTF-8 become U+FFFD.

        >>> load_tokenizer("gpt2").decode([464, 3290, 50256])
        'The dog<|endoftext|>'
        """
        checked = self.check_ids(ids)
        # The library drops special tokens by default; GPT2TokenizerFast keeps them.
        return self._backend.decode(checked, skip_special_tokens=False)

    def check_ids(self, ids: Iterable[int]) -> list[int]:
        """`ids` as a list of Python ints, or a MiniGPTError naming the first bad one."""
        if isinstance(ids, (str, bytes)):
            raise MiniGPTError(f"decode: expected a list of token ids, got {type(ids).__name__}")
        return [self.check_id(token_id, position) for position, token_id in enumerate(ids)]

    def check_id(self, token_id: int, position: int = 0) -> int:
        """`token_id` as a Python int if it lies in the vocabulary, else a MiniGPTError."""
        try:
            value = operator.index(token_id)  # int or NumPy integer, never a float
        except TypeError:
            raise MiniGPTError(
                f"decode: token id at position {position} must be an integer, got {token_id!r}"
            ) from None
        if not 0 <= value < self.vocab_size:
            raise MiniGPTError(
                f"decode: token id {value} at position {position} is outside the vocabulary "
                f"[0, {self.vocab_size}); use the tokenizer that belongs to the model"
            )
        return value

    def token_bytes(self, token_id: int) -> bytes:
        """The raw bytes one token stands for (possibly part of a UTF-8 character).

        >>> load_tokenizer("gpt2").token_bytes(3290)
        b' dog'
        """
        token = self._backend.id_to_token(self.check_id(token_id))
        if all(char in CHAR_TO_BYTE for char in token):
            return bytes(CHAR_TO_BYTE[char] for char in token)
        # An added token written outside the byte alphabet stands for its own UTF-8
        # (this is what the library's ByteLevel decoder does too).
        return token.encode("utf-8")

    def stream_decoder(self) -> StreamDecoder:
        """A fresh `StreamDecoder` for this vocabulary: push ids one at a time, get text."""
        return StreamDecoder(self)

    def decode_stream(self, ids: Iterable[int]) -> Iterator[str]:
        """Yield text as ids arrive, never half a character; the pieces join to `decode(ids)`.

        >>> tok = load_tokenizer("gpt2")
        >>> ids = tok.encode("你好")  # each character spans two tokens
        >>> [tok.decode([i]) for i in ids], list(tok.decode_stream(ids))
        (['�', '�', '�', '�'], ['你', '好'])
        """
        stream = self.stream_decoder()
        for token_id in ids:
            text = stream.push(token_id)
            if text:
                yield text
        tail = stream.finish()
        if tail:
            yield tail


def check_encodable(text: str) -> None:
    """Refuse text that has no UTF-8 form, with a message saying where and why.

    A Python str may hold "surrogates" (U+D800-U+DFFF), which are not characters. They come
    from two places: bytes that were not UTF-8 (Python turns a command-line argument's bad
    byte 0xff into U+DCFF, "surrogateescape"), and broken text such as half of an emoji's
    UTF-16 pair. Neither can become bytes, so neither can become GPT-2 tokens.

    >>> check_encodable("bad \\udcff")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    minigpt.errors.MiniGPTError: the text is not valid UTF-8: byte 0xff at character 4 is not...
    """
    for position, char in enumerate(text):
        code = ord(char)
        if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte, smuggled in by surrogateescape
            raise MiniGPTError(
                f"the text is not valid UTF-8: byte {code - 0xDC00:#04x} at character {position} "
                "is not part of any character; pass UTF-8 text"
            )
        if 0xD800 <= code <= 0xDFFF:
            raise MiniGPTError(
                f"the text holds a lone surrogate U+{code:04X} at character {position}, which "
                "is not a character and has no UTF-8 form; pass real text"
            )


class StreamDecoder:
    """Turns token ids, pushed one at a time, into text that is safe to print at once.

    A UTF-8 character of 2-4 bytes may be split across tokens; the incomplete tail is held
    back until the token that completes it arrives. `finish()` flushes what is left (bytes
    that never became a character come out as U+FFFD, as in `Tokenizer.decode`).

    >>> stream = load_tokenizer("gpt2").stream_decoder()
    >>> [stream.push(i) for i in [64, 8582, 25081]], stream.finish()  # "a🙂"
    (['a', '', '🙂'], '')
    """

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer
        # Python's incremental decoder keeps an incomplete multi-byte tail between calls.
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, token_id: int) -> str:
        """The text that token `token_id` completes (may be empty)."""
        return self._utf8.decode(self.tokenizer.token_bytes(token_id))

    def finish(self) -> str:
        """Whatever is still held back, once no more tokens will come."""
        return self._utf8.decode(b"", final=True)


# -- Loading ---------------------------------------------------------------------------------


def has_tokenizer_files(directory: Path) -> bool:
    """True if `directory` holds tokenizer.json, or both vocab.json and merges.txt."""
    return (directory / "tokenizer.json").is_file() or (
        (directory / "vocab.json").is_file() and (directory / "merges.txt").is_file()
    )


def tokenizer_dir_for(model_dir: str | Path) -> Path:
    """The directory to load a model's tokenizer from.

    The model's own directory if it has tokenizer files. Otherwise, a model whose config.json
    says vocab_size 50257 uses GPT-2's vocabulary, bundled in minigpt/data/gpt2-tokenizer/;
    anything else has no tokenizer we could know, and raises MiniGPTError.

    >>> tokenizer_dir_for(hub.resolve_model_dir("minigpt-tiny")).name  # has its own
    'minigpt-tiny'
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise MiniGPTError(f"tokenizer: {model_dir} is not a directory; pass a model directory")
    if has_tokenizer_files(model_dir):
        return model_dir
    vocab_size = config_vocab_size(model_dir)
    if vocab_size == GPT2_VOCAB_SIZE and has_tokenizer_files(BUNDLED_GPT2_DIR):
        return BUNDLED_GPT2_DIR
    reason = "no config.json" if vocab_size is None else f"config vocab_size is {vocab_size}"
    raise MiniGPTError(
        f"tokenizer: no tokenizer.json or vocab.json + merges.txt in {model_dir} ({reason}, "
        f"so GPT-2's vocabulary does not apply); copy the model's tokenizer files there"
    )


def config_vocab_size(model_dir: Path) -> int | None:
    """vocab_size from `model_dir`/config.json, or None if there is no config.json."""
    path = model_dir / "config.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))["vocab_size"]
    except (ValueError, KeyError, TypeError) as e:
        raise MiniGPTError(f"tokenizer: cannot read vocab_size from {path} ({e!r})") from None


def resolve_tokenizer_dir(name_or_path: str | Path) -> Path:
    """The directory to load a tokenizer from, for a directory or a model name.

    A directory: its own tokenizer files, or the fallback `tokenizer_dir_for` explains. A
    published GPT-2 name (gpt2, gpt2-medium, ..., distilgpt2): they all share one vocabulary,
    so no weights are needed: the tokenizer files of a download or a Hugging Face snapshot if
    one is on disk, else the bundled copy. Any other name: the model it names (minigpt-tiny,
    or a folder of the checkpoints directory), which may hold tokenizer files only.

    >>> resolve_tokenizer_dir("distilgpt2") == BUNDLED_GPT2_DIR  # with no download on disk
    True
    """
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return tokenizer_dir_for(path)
    argument = str(name_or_path)
    published = hub.published_name(argument)
    if published is not None:
        return hub.find_named_dir(published, has_tokenizer_files) or BUNDLED_GPT2_DIR
    found = hub.find_named_dir(argument, Path.is_dir)
    if found is not None:
        return tokenizer_dir_for(found)
    raise MiniGPTError(f"tokenizer: {hub.not_found_message(argument, path)}")


def load_tokenizer(name_or_path: str | Path) -> Tokenizer:
    """Load GPT-2's tokenizer from a directory (tokenizer files, or a model directory) or for
    a model name; no weights are needed (see `resolve_tokenizer_dir`).

    tokenizer.json is used if present, else vocab.json + merges.txt.

    >>> load_tokenizer("gpt2").encode("The dog")
    [464, 3290]
    """
    directory = resolve_tokenizer_dir(name_or_path)
    if (directory / "tokenizer.json").is_file():
        backend = backend_from_tokenizer_json(directory / "tokenizer.json")
    else:
        backend = backend_from_vocab_merges(directory / "vocab.json", directory / "merges.txt")
    add_eos_as_special(backend)
    check_byte_level(backend, directory)
    return Tokenizer(backend, source=str(directory))


def backend_from_vocab_merges(vocab: Path, merges: Path) -> tokenizers.Tokenizer:
    """GPT-2's tokenizer built from its two original files."""
    try:
        bpe = models.BPE.from_file(str(vocab), str(merges))
    except Exception as e:  # the library raises a bare Exception
        raise malformed(f"{vocab} / {merges}", e) from None
    backend = tokenizers.Tokenizer(bpe)
    # GPT-2 does not put a space before the first word: "Hello" and " Hello" differ.
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    return backend


def backend_from_tokenizer_json(path: Path) -> tokenizers.Tokenizer:
    """A tokenizer saved whole by the `tokenizers` library (the Hugging Face hub format)."""
    try:
        return tokenizers.Tokenizer.from_file(str(path))
    except Exception as e:  # the library raises a bare Exception
        raise malformed(str(path), e) from None


def add_eos_as_special(backend: tokenizers.Tokenizer) -> None:
    """Make a literal "<|endoftext|>" in text encode to its one id, never split into pieces."""
    if backend.token_to_id(EOS_TOKEN) is not None:
        # Already in the vocabulary, so this marks it special and keeps its id.
        backend.add_special_tokens([AddedToken(EOS_TOKEN, special=True, normalized=False)])


def check_byte_level(backend: tokenizers.Tokenizer, directory: Path) -> None:
    """Refuse tokenizers that are not byte-level BPE: they could not round-trip any text."""
    if not isinstance(backend.model, models.BPE) or not isinstance(
        backend.decoder, decoders.ByteLevel
    ):
        raise MiniGPTError(
            f"tokenizer: {directory} is not a byte-level BPE tokenizer like GPT-2's; "
            f"use GPT-2's tokenizer files"
        )
    missing = [char for char in CHAR_TO_BYTE if backend.token_to_id(char) is None]
    if missing:
        raise MiniGPTError(
            f"tokenizer: the vocabulary in {directory} lacks {len(missing)} of the 256 byte "
            f"symbols, so some text could not be encoded; use GPT-2's tokenizer files"
        )


def malformed(what: str, error: Exception) -> MiniGPTError:
    """A one-line error for tokenizer files the library could not parse."""
    detail = " ".join(str(error).split())  # the library's message, kept on one line
    return MiniGPTError(f"tokenizer: malformed files {what} ({detail}); re-download them")

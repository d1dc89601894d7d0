"""Train the bundled default model, minigpt-tiny, from nothing but this repository.

    python weights/scripts/train_tiny.py            # about half an hour on 2 CPU cores

    # its draft model for speculative decoding, minigpt/data/minigpt-tiny-draft/ (minutes):
    python weights/scripts/train_tiny.py --draft-of minigpt/data/minigpt-tiny \
        --out minigpt/data/minigpt-tiny-draft --layers 1 --heads 2 --embd 64 --steps 8000

What it does, in order:
1. runs make_corpus.py's grammar to write weights/corpus/stories.txt (git-ignored);
2. trains a byte-level BPE tokenizer on it with the `tokenizers` library;
3. trains a small GPT-2 (transformers' GPT2LMHeadModel) on random windows of the token stream;
4. saves config.json, tokenizer.json and model.safetensors in the published GPT-2 layout
   (`wte.weight`, `h.0.attn.c_attn.weight` as [in, out], ..., no `transformer.` prefix and no
   `lm_head.weight`, which is tied to `wte`), so minigpt.load reads it like the real gpt2,
   into minigpt/data/minigpt-tiny/: inside the package, so that every install of minigpt has it;
5. reloads what it saved and checks it gives the trained model's logits;
6. writes MODEL_CARD.md with the figures of this run and sample outputs.

With `--draft-of DIR` it trains a draft model for DIR's model instead: step 2 loads DIR's
tokenizer.json (and copies the file byte for byte), so both models share one vocabulary, and
step 6 also measures how often the draft's greedy token is the target's on held-out stories.

torch and transformers are dev-only tools here (pip install -e .[reference]): nothing under
minigpt/ or decoding/ imports them. Everything is seeded; on the same machine and library
versions the run is repeatable, elsewhere the losses agree to a few hundredths.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file, save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel

sys.path.insert(0, str(Path(__file__).parent))
from make_corpus import END_OF_STORY, make_corpus  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
PROMPT = "Once upon a time, there was a little"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Train minigpt-tiny (see the module docstring).")
    p.add_argument("--out", type=Path, default=REPO / "minigpt" / "data" / "minigpt-tiny")
    p.add_argument("--corpus", type=Path, default=REPO / "weights" / "corpus" / "stories.txt")
    p.add_argument("--stories", type=int, default=12000, help="stories in the corpus")
    p.add_argument("--vocab", type=int, default=2048, help="BPE vocabulary size")
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--embd", type=int, default=192)
    p.add_argument("--context", type=int, default=256, help="n_positions and window length")
    p.add_argument("--batch", type=int, default=8, help="windows per step")
    p.add_argument("--steps", type=int, default=2600)
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate")
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--eval-every", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    # One thread: on a machine whose cores are busy with other work, two OpenMP threads spend
    # their time waiting for each other at barriers (measured: 5x slower than one thread).
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--draft-of",
        type=Path,
        default=None,
        metavar="DIR",
        help="train a draft for the model in DIR: reuse its tokenizer.json, measure agreement",
    )
    return p.parse_args(argv)


# ---------------------------------------------------------------------------------------------
# Data: corpus -> tokenizer -> one long stream of token ids.
# ---------------------------------------------------------------------------------------------
def load_stories(path: Path, n_stories: int, seed: int) -> list[str]:
    """Generate the corpus (always: it takes a second and keeps the run self-contained)."""
    text = make_corpus(n_stories, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return [s.strip() for s in text.split(END_OF_STORY) if s.strip()]


def train_tokenizer(stories: list[str], vocab_size: int) -> Tokenizer:
    """GPT-2-style byte-level BPE: any string encodes, and decode(encode(s)) == s."""
    tok = Tokenizer(models.BPE())
    # No prefix space, as in GPT-2: the first word of a text keeps no leading space.
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[END_OF_STORY],  # id 0: the end-of-text token between stories
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # all 256 bytes, so nothing is OOV
        show_progress=False,
    )
    tok.train_from_iterator(stories, trainer)
    for s in stories[:200] + ["Zebras? 42 ünïcødé\n\n  spaces"]:
        assert tok.decode(tok.encode(s).ids) == s, f"tokenizer does not round-trip {s!r}"
    return tok


def load_tokenizer(path: Path, stories: list[str]) -> Tokenizer:
    """A saved tokenizer.json (a draft model must share its target's ids, so it cannot train
    its own); it must round-trip the corpus and have the end-of-text token."""
    tok = Tokenizer.from_file(str(path))
    assert tok.token_to_id(END_OF_STORY) is not None, f"{path} has no {END_OF_STORY} token"
    for s in stories[:200]:
        assert tok.decode(tok.encode(s).ids) == s, f"{path} does not round-trip {s!r}"
    return tok


def token_stream(tok: Tokenizer, stories: list[str]) -> np.ndarray:
    """All stories as one id array, each followed by the end-of-text id."""
    eos = tok.token_to_id(END_OF_STORY)
    ids: list[int] = []
    for encoding in tok.encode_batch(stories):
        ids.extend(encoding.ids)
        ids.append(eos)
    return np.array(ids, dtype=np.int64)


def random_windows(data: torch.Tensor, batch: int, length: int, gen: torch.Generator):
    """`batch` windows of length+1 tokens at random offsets: inputs and next-token targets."""
    starts = torch.randint(0, len(data) - length - 1, (batch,), generator=gen)
    rows = torch.stack([data[s : s + length + 1] for s in starts.tolist()])
    return rows[:, :-1], rows[:, 1:]


# ---------------------------------------------------------------------------------------------
# Model and training.
# ---------------------------------------------------------------------------------------------
def make_config(args: argparse.Namespace, tok: Tokenizer) -> GPT2Config:
    eos = tok.token_to_id(END_OF_STORY)
    return GPT2Config(
        vocab_size=tok.get_vocab_size(),
        n_positions=args.context,
        n_embd=args.embd,
        n_layer=args.layers,
        n_head=args.heads,
        bos_token_id=eos,
        eos_token_id=eos,
        # No dropout: millions of generated tokens and a few million weights cannot overfit.
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )


def make_optimizer(model: torch.nn.Module, lr: float) -> torch.optim.Optimizer:
    """AdamW with weight decay on matrices only (not on biases and layer-norm gains)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95))


def learning_rate(step: int, args: argparse.Namespace) -> float:
    """Linear warm-up, then a cosine decay to a tenth of the peak."""
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    progress = (step - args.warmup) / max(1, args.steps - args.warmup)
    return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def lm_loss(model: GPT2LMHeadModel, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each position's logits against the next token."""
    logits = model(input_ids=x).logits
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))


def train(model, train_data, val_data, args) -> dict:
    """The loop; returns the figures the model card reports."""
    opt = make_optimizer(model, args.lr)
    gen = torch.Generator().manual_seed(args.seed)
    start, history = time.time(), []
    for step in range(args.steps):
        for group in opt.param_groups:
            group["lr"] = learning_rate(step, args)
        x, y = random_windows(train_data, args.batch, args.context, gen)
        loss = lm_loss(model, x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 50 == 0:
            rate = (step + 1) / (time.time() - start)
            eta = (args.steps - step - 1) / rate / 60
            speed = f"{rate:.2f} steps/s, {eta:.1f} min left"
            print(f"step {step:5d}  loss {loss.item():.3f}  {speed}", flush=True)
        if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
            tr, va = eval_losses(model, train_data, val_data, args)
            history.append((step + 1, tr, va))
            print(f"eval step {step + 1}: train {tr:.3f}  validation {va:.3f}", flush=True)
    return {"seconds": time.time() - start, "history": history}


@torch.no_grad()
def eval_losses(model, train_data, val_data, args) -> tuple[float, float]:
    """Mean loss on both splits, in eval mode."""
    model.eval()
    losses = mean_loss(model, train_data, args), mean_loss(model, val_data, args)
    model.train()
    return losses


def mean_loss(model, data: torch.Tensor, args) -> float:
    """Mean next-token loss over 8 fixed batches (the same windows at every evaluation)."""
    gen = torch.Generator().manual_seed(1234)
    windows = [random_windows(data, args.batch, args.context, gen) for _ in range(8)]
    return float(np.mean([lm_loss(model, x, y).item() for x, y in windows]))


# ---------------------------------------------------------------------------------------------
# Saving in the published layout, and checking what was saved.
# ---------------------------------------------------------------------------------------------
def hub_tensors(model: GPT2LMHeadModel) -> dict[str, np.ndarray]:
    """state_dict -> published names: drop `transformer.`, drop the tied `lm_head.weight`."""
    out = {}
    for name, tensor in model.state_dict().items():
        if name == "lm_head.weight":
            assert torch.equal(tensor, model.transformer.wte.weight), "head must be tied to wte"
            continue
        if name.endswith((".attn.bias", ".attn.masked_bias")):
            continue  # causal-mask buffers, not weights
        out[name.removeprefix("transformer.")] = tensor.detach().float().numpy().copy()
    return out


def config_json(config: GPT2Config) -> dict:
    """The fields of the published gpt2 config.json that describe the network."""
    keys = [
        "vocab_size", "n_positions", "n_embd", "n_layer", "n_head", "n_inner",
        "activation_function", "layer_norm_epsilon", "initializer_range", "resid_pdrop",
        "embd_pdrop", "attn_pdrop", "bos_token_id", "eos_token_id",
    ]  # fmt: skip
    fields = {k: getattr(config, k) for k in keys}
    fields["n_ctx"] = config.n_positions  # older readers look for n_ctx
    return {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", **fields}


def save(model: GPT2LMHeadModel, tok: Tokenizer, out: Path, tok_file: Path | None) -> None:
    """The three files; `tok_file` (a draft's target's tokenizer.json) is copied unchanged."""
    out.mkdir(parents=True, exist_ok=True)
    save_file(hub_tensors(model), str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(config_json(model.config), indent=2) + "\n")
    if tok_file is None:
        tok.save(str(out / "tokenizer.json"))
    else:  # tok.save would re-serialise it: the same tokenizer, but not the same bytes
        (out / "tokenizer.json").write_bytes(tok_file.read_bytes())


def check_saved(model: GPT2LMHeadModel, out: Path) -> float:
    """Reload the saved files (numpy, then transformers) and compare logits with `model`."""
    tensors = load_file(str(out / "model.safetensors"))
    expected = hub_tensors(model)
    assert tensors.keys() == expected.keys(), "saved names differ from the model's"
    assert all(np.array_equal(tensors[k], expected[k]) for k in tensors), "saved values differ"
    reloaded = GPT2LMHeadModel.from_pretrained(str(out)).eval()
    ids = torch.arange(1, 65).unsqueeze(0) % model.config.vocab_size
    with torch.no_grad():
        a, b = model.eval()(input_ids=ids).logits, reloaded(input_ids=ids).logits
    diff = (a - b).abs().max().item()
    assert diff < 1e-4, f"reloaded model's logits differ by {diff}"
    return diff


def samples(model: GPT2LMHeadModel, tok: Tokenizer, prompt: str) -> dict[str, str]:
    """Greedy, beam and sampled continuations of `prompt` (transformers' generate)."""
    ids = torch.tensor([tok.encode(prompt).ids])
    settings = {
        "greedy": {"do_sample": False, "num_beams": 1},
        "beam search (4 beams)": {"do_sample": False, "num_beams": 4},
        "sampling (temperature 1.0, top-p 0.9, seed 0)": {
            "do_sample": True,
            "top_p": 0.9,
            "top_k": 0,
            "temperature": 1.0,
        },
    }
    out = {}
    for name, kw in settings.items():
        torch.manual_seed(0)
        eos = model.config.eos_token_id
        gen = model.generate(ids, max_new_tokens=80, pad_token_id=eos, eos_token_id=eos, **kw)
        out[name] = tok.decode(gen[0].tolist())
    return out


@torch.no_grad()
def greedy_agreement(draft, target, tok: Tokenizer, stories: list[str]) -> tuple[float, int]:
    """How often the draft's most likely next token is the target's: (rate, positions).

    Each story is run whole (its first n_positions tokens) through both models, and the argmax
    of the logits is compared at every position. For greedy speculative decoding this rate is
    the acceptance rate: a drafted token is kept exactly when the target would have chosen it.
    tests/test_bundled_draft.py re-measures it with minigpt the same way.
    """
    agree = total = 0
    for story in stories:
        ids = torch.tensor([tok.encode(story).ids[: target.config.n_positions]])
        a = draft(input_ids=ids).logits[0].argmax(-1)
        b = target(input_ids=ids).logits[0].argmax(-1)
        agree += int((a == b).sum())
        total += a.numel()
    return agree / total, total


# ---------------------------------------------------------------------------------------------
# Model card.
# ---------------------------------------------------------------------------------------------
def model_card(args, stats: dict, out: Path, n_params: int, n_tokens: int, texts) -> str:
    """MODEL_CARD.md: what the model is, what it was trained on, and how to rebuild it."""
    sizes = {p.name: p.stat().st_size for p in sorted(out.iterdir()) if p.name != "MODEL_CARD.md"}
    step, tr, va = stats["history"][-1]
    command = " ".join(["python weights/scripts/train_tiny.py", *stats["argv"]])
    rows = "\n".join(f"| {s} | {t:.3f} | {v:.3f} |" for s, t, v in stats["history"])
    files = "\n".join(f"- `{n}`: {b:,} bytes" for n, b in sizes.items())
    shown = "\n\n".join(f"**{k}**\n\n```text\n{v.strip()}\n```" for k, v in texts.items())
    shape = f"{args.layers} layers, {args.heads} heads, n_embd {args.embd}"
    return f"""# minigpt-tiny

The default model of minigpt: what `make demo` and `minigpt` without `--model` run on, with no
network. A GPT-2 in miniature ({shape}, {args.context} positions, a {stats["vocab"]}-token
byte-level BPE), trained from scratch by `weights/scripts/train_tiny.py`. It writes simple
children's stories and nothing else; it exists so that greedy search, beam search and sampling
have a real model to disagree on.

## Corpus and licence

Generated, not downloaded: `weights/scripts/make_corpus.py` expands a probabilistic grammar of
children's stories (a hero, a friend, a grown-up, a place, an object; eleven plots such as a
lost toy, sharing a snack, a fear overcome, a seed that grows; dialogue whose speech verbs fit
the words; optional details). {args.stories:,} stories from seed {args.seed}: {stats["chars"]:,}
characters, {n_tokens:,} tokens; the last 2% of the stories are held out for validation.

The text is written by this project's own code, so it carries the project's licence (MIT) and
no third-party rights; so do the weights. Nothing is downloaded, so the model can be rebuilt on
any machine with torch and transformers.

Because the corpus comes from a grammar, the model has learned that grammar: expect fluent,
repetitive, small-vocabulary stories, and odd continuations of prompts unlike them.

## Size

- {n_params:,} parameters (the output head is tied to `wte`, as in GPT-2), stored as float32.
{files}

The files follow the published Hugging Face GPT-2 layout: `config.json` with the GPT-2 fields;
`model.safetensors` with `wte.weight`, `wpe.weight`, `h.N.ln_1.weight`,
`h.N.attn.c_attn.weight` ([in, out], Conv1D), ..., `ln_f.bias`, no `transformer.` prefix and
no `lm_head.weight`; and `tokenizer.json` (`<|endoftext|>` is id {stats["eos"]}, both BOS and
EOS, and ends every training story).

## Training

- Hardware: {stats["hardware"]}; torch {torch.__version__}, {args.threads} torch thread(s).
- Training time: {stats["seconds"] / 60:.1f} minutes for {args.steps} steps of {args.batch} windows
  of {args.context} tokens ({args.steps * args.batch * args.context:,} tokens seen), plus about a
  minute to write the corpus, train the tokenizer and save.
- AdamW (betas 0.9/0.95, weight decay 0.1 on matrices), peak learning rate {args.lr},
  {args.warmup} warm-up steps, cosine decay to a tenth, gradient clipping at 1.0, no dropout.
- Final loss (mean next-token cross-entropy in nats, 8 fixed batches of each split): train
  **{tr:.3f}**, validation **{va:.3f}** at step {step}. Train and validation agree because both
  come from the same grammar: there is nothing to memorise beyond it.

| step | train loss | validation loss |
| ---: | ---: | ---: |
{rows}

Rebuild (writes weights/corpus/, git-ignored, and this folder; needs
`pip install -e .[reference]`):

```sh
{command}
```

## Sample outputs

Prompt `{PROMPT}`, at most 80 new tokens, from transformers' `generate` at the end of training.
minigpt's greedy and beam search give the same tokens; its sampler draws from its own random
generator, so its samples differ from these.

{shown}
"""


def draft_card(args, stats: dict, out: Path, n_params: int, n_tokens: int) -> str:
    """MODEL_CARD.md of a draft model: what it is for, how it was made, how often it agrees."""
    sizes = {p.name: p.stat().st_size for p in sorted(out.iterdir()) if p.name != "MODEL_CARD.md"}
    step, tr, va = stats["history"][-1]
    command = " ".join(["python weights/scripts/train_tiny.py", *stats["argv"]])
    rows = "\n".join(f"| {s} | {t:.3f} | {v:.3f} |" for s, t, v in stats["history"])
    files = "\n".join(f"- `{n}`: {b:,} bytes" for n, b in sizes.items())
    shape = f"{args.layers} layer{'s' * (args.layers > 1)}, {args.heads} heads, n_embd {args.embd}"
    target, alpha = stats["target"], stats["agreement"]
    # If each drafted token were accepted independently with probability alpha, a round that
    # drafts k tokens would yield (1 - alpha^(k+1)) / (1 - alpha) tokens per target forward.
    yields = "\n".join(f"- k = {k}: {(1 - alpha ** (k + 1)) / (1 - alpha):.2f}" for k in (2, 4, 8))
    return f"""# {out.name}

The draft model of {target}, for speculative decoding: a much smaller GPT-2
({shape}, {args.context} positions)
that proposes a few tokens cheaply, which {target} then checks in one forward pass. It
shares {target}'s tokenizer (`tokenizer.json` is a byte-for-byte copy), so its vocabulary
({stats["vocab"]} tokens), its end-of-text id ({stats["eos"]}, both BOS and EOS) and its context
length are the same, and a drafted id means the same text to both models. On its own it writes
worse stories than {target}; it is not meant to be used alone.

## Agreement with {target}

Greedy agreement on held-out stories: **{alpha:.1%}** of {stats["agreement_positions"]:,} positions.

Each of the {stats["agreement_stories"]} stories that training held out is run whole (its first
{args.context} tokens) through both models, and at every position the draft's most likely next
token is compared with {target}'s. In greedy speculative decoding this is the acceptance rate
alpha: a drafted token is kept exactly when it is the token {target} would have chosen.

Were acceptances independent, a round that drafts k tokens would give
(1 - alpha^(k+1)) / (1 - alpha) tokens per forward pass of {target}:

{yields}

Real acceptances come in runs (easy stretches, hard words), so measure rather than trust these.

## Size

- {n_params:,} parameters (the output head is tied to `wte`), stored as float32.
{files}

Same published GPT-2 layout as {target}: `config.json`, `model.safetensors` (`wte.weight`,
`h.N.attn.c_attn.weight` as [in, out], ..., no `lm_head.weight`), `tokenizer.json`.

## Training

Same corpus as {target}: `weights/scripts/make_corpus.py`, {args.stories:,} stories from seed
{args.seed} ({stats["chars"]:,} characters, {n_tokens:,} tokens), the last 2% of them held out;
generated by this project's own code, so it and the weights carry the project's licence (MIT).

- Hardware: {stats["hardware"]}; torch {torch.__version__}, {args.threads} torch thread(s).
- Training time: {stats["seconds"] / 60:.1f} minutes for {args.steps} steps of {args.batch} windows
  of {args.context} tokens ({args.steps * args.batch * args.context:,} tokens seen).
- AdamW (betas 0.9/0.95, weight decay 0.1 on matrices), peak learning rate {args.lr},
  {args.warmup} warm-up steps, cosine decay to a tenth, gradient clipping at 1.0, no dropout.
- Final loss (mean next-token cross-entropy in nats, 8 fixed batches of each split): train
  **{tr:.3f}**, validation **{va:.3f}** at step {step} ({target}: see its MODEL_CARD.md).

| step | train loss | validation loss |
| ---: | ---: | ---: |
{rows}

Rebuild (needs {target} and `pip install -e .[reference]`):

```sh
{command}
```
"""


def hardware() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, no GPU"


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)

    stories = load_stories(args.corpus, args.stories, args.seed)
    tok_file = None if args.draft_of is None else args.draft_of / "tokenizer.json"
    tok = (
        train_tokenizer(stories, args.vocab)
        if tok_file is None
        else load_tokenizer(tok_file, stories)
    )
    n_val = max(1, len(stories) // 50)
    train_data = torch.from_numpy(token_stream(tok, stories[:-n_val]))
    val_data = torch.from_numpy(token_stream(tok, stories[-n_val:]))
    print(f"{len(stories)} stories, vocab {tok.get_vocab_size()}, tokens {len(train_data):,}")

    model = GPT2LMHeadModel(make_config(args, tok)).train()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{n_params:,} parameters", flush=True)
    stats = train(model, train_data, val_data, args)

    save(model, tok, args.out, tok_file)
    print(f"saved; reloaded logits differ by {check_saved(model, args.out):.2e}")
    stats.update(
        argv=argv,
        vocab=tok.get_vocab_size(),
        eos=tok.token_to_id(END_OF_STORY),
        chars=sum(map(len, stories)),
        hardware=hardware(),
    )
    n_tokens = len(train_data) + len(val_data)
    if args.draft_of is None:
        texts = samples(model.eval(), tok, PROMPT)
        for name, text in texts.items():
            print(f"--- {name}\n{text}")
        card = model_card(args, stats, args.out, n_params, n_tokens, texts)
    else:
        stats.update(measure_draft(args.draft_of, model, tok, stories[-n_val:]))
        card = draft_card(args, stats, args.out, n_params, n_tokens)
    (args.out / "MODEL_CARD.md").write_text(card)
    print(f"wrote {args.out}")


def measure_draft(target_dir: Path, model, tok: Tokenizer, held_out: list[str]) -> dict:
    """The draft card's figures: the target's name and the greedy agreement with it."""
    target = GPT2LMHeadModel.from_pretrained(str(target_dir)).eval()
    for key in ["vocab_size", "eos_token_id", "n_positions"]:
        ours, theirs = getattr(model.config, key), getattr(target.config, key)
        assert ours == theirs, f"the draft's {key} is {ours}, its target's {theirs}"
    alpha, positions = greedy_agreement(model.eval(), target, tok, held_out)
    print(f"greedy agreement with {target_dir.name}: {alpha:.4f} over {positions:,} positions")
    return {
        "target": target_dir.name,
        "agreement": alpha,
        "agreement_positions": positions,
        "agreement_stories": len(held_out),
    }


if __name__ == "__main__":
    main()

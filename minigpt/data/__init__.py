"""Data that ships inside the package, read with importlib.resources (minigpt/installation.py).

minigpt-tiny/     the bundled default model: config.json, model.safetensors (8 MB),
                  tokenizer.json and its MODEL_CARD.md (weights/scripts/train_tiny.py made it)
minigpt-tiny-draft/
                  minigpt-tiny's draft model for speculative decoding: a much smaller GPT-2
                  with the same tokenizer.json (train_tiny.py --draft-of made it; MODEL_CARD.md)
gpt2-tokenizer/   GPT-2's vocabulary (vocab.json + merges.txt), shared by every published GPT-2,
                  with a README.md saying where it comes from and under which license

A package (this file) rather than a bare folder, so that setuptools ships the folders below
as the package's data instead of warning that an importable folder was left out. Nothing here
is ever written to: an installed minigpt may not own its site-packages.
"""

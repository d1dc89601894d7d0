"""minigpt against HF transformers, side by side: run bench_generate.py (see README.md here).

A package so that its modules are imported as benchmarks.timing etc., never as a top-level
`timing` that another installed module of that name could shadow.
"""

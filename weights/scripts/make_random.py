"""Write a random-weight GPT-2 checkpoint in the published layout (test and benchmark models).

    python weights/scripts/make_random.py weights/random-tiny --n-layer 2 --n-embd 64 --n-head 4
    python weights/scripts/make_random.py weights/random-gpt2 --preset gpt2   # 124M shape

The code lives in the package, minigpt/make_random.py, because minigpt itself builds its random
stand-in for the bundled model with it; this script only runs it.
"""

import sys
from pathlib import Path

# Run from anywhere, installed or not: the repository root holds the minigpt package.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from minigpt.make_random import main  # noqa: E402

if __name__ == "__main__":
    main()

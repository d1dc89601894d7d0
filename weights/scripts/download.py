"""Download a published GPT-2 checkpoint into weights/NAME/: `minigpt download`, from a checkout.

    python weights/scripts/download.py gpt2

The code lives in the package, minigpt/download.py, so that an installed minigpt has it too
(`minigpt download gpt2`); this script only runs it. See that module for what it does.
"""

import sys
from pathlib import Path

# Run from anywhere, installed or not: the repository root holds the minigpt package.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from minigpt.download import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())

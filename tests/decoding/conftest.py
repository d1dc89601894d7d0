"""Let `import decoding` find the package, not this directory.

tests/conftest.py puts tests/ on sys.path, where this directory looks like a namespace package
called `decoding`; with the editable install the real package is found only after that. A
regular package anywhere on sys.path beats a namespace one, so putting the repository root on
the path is enough.
"""

import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

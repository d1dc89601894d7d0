import os
import sys
from pathlib import Path

# Tests import their shared helpers (tests/reference.py, ...) as top-level modules.
sys.path.insert(0, str(Path(__file__).parent))
# Reference runs compare against torch on the same 2 cores: keep torch from oversubscribing.
os.environ.setdefault("OMP_NUM_THREADS", "2")

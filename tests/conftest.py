"""Make the tests import the repository's own dkrzspawner, not the (non-editable) copy in the venv."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

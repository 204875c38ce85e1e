"""kernels/ works without JupyterHub: its modules import in a Python where ``import jupyterhub`` fails."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

#: run in a fresh interpreter: every ``import jupyterhub...`` fails (and is recorded), then the kernels' modules
#: are imported
BLOCKED = """
import sys

class NoHub:
    tried = []

    def find_spec(self, name, path=None, target=None):
        if name == "jupyterhub" or name.startswith("jupyterhub."):
            self.tried.append(name)
            raise ImportError(f"{name} is blocked (no JupyterHub here)")
        return None

sys.meta_path.insert(0, NoHub())
try:
    import jupyterhub
except ImportError:
    pass
else:
    raise SystemExit("the blocker does not work")
NoHub.tried.clear()
import dkrzspawner.kernels.provisioner, dkrzspawner.kernels.cli, dkrzspawner.kernels.kernelspec
import dkrzspawner.slurm.allocations
assert not NoHub.tried, NoHub.tried
assert "dkrzspawner.spawner" not in sys.modules
print("imported without jupyterhub")
"""


def test_the_kernels_import_without_jupyterhub():
    done = subprocess.run([sys.executable, "-c", BLOCKED], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "imported without jupyterhub"

"""The privacy tests' fixtures: a key provider, a small populated vault and a run folder
(tests.kit)."""

from tests.kit.runs import run_dir
from tests.kit.vaults import household, key_file, keys, vault

__all__ = ["household", "key_file", "keys", "run_dir", "vault"]

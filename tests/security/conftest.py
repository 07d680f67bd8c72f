"""The security tests' fixtures: a database URL on every engine the VTN supports
(tests.kit.databases)."""

from tests.kit.databases import storage_url

__all__ = ["storage_url"]

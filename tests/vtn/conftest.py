"""Fixtures for VTN tests: a database URL on every engine the VTN supports, and a storage open
on it (tests.kit.databases)."""

from tests.kit.databases import storage, storage_url

__all__ = ["storage", "storage_url"]

"""Alembic revisions of the VTN schema (a package so that built wheels include them)."""

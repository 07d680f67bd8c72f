"""The test suite's one fixture library: what several test packages need, written once.

- :mod:`tests.kit.pki`: the session's certificate authorities and certificate files.
- :mod:`tests.kit.examples`: an example TOML copied beside the certificate files it names.
- :mod:`tests.kit.vaults`: a key provider, a populated identity vault, a key file.
- :mod:`tests.kit.runs`: a run folder of captured messages.

Each module imports only what its name says it needs, so the tests of a layer can use the kit
without importing a layer above their own (the import contracts in pyproject.toml check it).
"""

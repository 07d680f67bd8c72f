"""The test suite's one fixture library: what several test packages need, written once.

- :mod:`tests.kit.pki`: the session's certificate authorities and certificate files.
- :mod:`tests.kit.certificates`: certificates an attacker would try, and whether TLS takes them.
- :mod:`tests.kit.clock`: the injected clock a test moves by hand.
- :mod:`tests.kit.signing`: signing identities and a signer/verifier pair (imports nothing above
  :mod:`schemas`).
- :mod:`tests.kit.net`: free loopback ports for servers that cannot bind port 0 themselves.
- :mod:`tests.kit.vtn`: the test VtnConfig, and a VTN served on loopback as deployed.
- :mod:`tests.kit.databases`: ``storage_url`` on SQLite and a fresh PostgreSQL database.
- :mod:`tests.kit.storage`: VEN registrations to fill a VTN's storage with.
- :mod:`tests.kit.admin`: the admin API of a running VTN.
- :mod:`tests.kit.signed`: a VEN that signs what it sends.
- :mod:`tests.kit.telemetry`: report descriptions and an UpdateReport of telemetry.
- :mod:`tests.kit.examples`: an example TOML copied beside the certificate files it names.
- :mod:`tests.kit.vaults`: a key provider, a populated identity vault, a key file.
- :mod:`tests.kit.runs`: a run folder of captured messages.
- :mod:`tests.kit.polling`: a VEN's queue drained by a bounded number of polls.

Each module imports only what its name says it needs, so the tests of a layer can use the kit
without importing a layer above their own (the import contracts in pyproject.toml check it).
Fixtures are defined here and named in the conftest.py of each test package that uses them.
"""

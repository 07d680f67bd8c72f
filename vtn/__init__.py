"""crowdflex VTN: the OpenADR 2.0b server (aiohttp, mutual TLS, SQLite or PostgreSQL storage).

Its own errors, under the message layer's root (``schemas.CrowdflexError``); protocol refusals
sent to a VEN are the message layer's ``RemoteProtocolError`` s::

    CrowdflexError (schemas)
    +-- VtnError                  the VTN's own input, trust anchors and storage (vtn.errors)
        +-- BadInput              admin API input it cannot take; also a ValueError
        |                         (vtn.admin_input; vtn.admin catches it as one)
        +-- CertificateRejected   trust anchors, validity rules or revocation lists refuse a
        |                         certificate; also a ValueError (vtn.certpath)
        +-- EventFinal            a change to an event that is over (vtn.services.events;
        |   |                     the admin API answers 409)
        |   +-- EventCancelled    a modify: the event was cancelled, which stays final
        |   +-- EventCompleted    a modify or cancel: the event's active period has ended
        +-- StorageError          (vtn.storage)
            +-- StorageConflict   a unique or foreign key refused the write; nothing written
            |   +-- StaleModification  an event older than the stored one
            +-- StorageUnavailable  PostgreSQL unreachable, refusing, out of resources or
                |                 past the statement timeout (the asyncpg hot paths;
                |                 nothing committed)
                +-- StorageBusy   a lock not granted within the lock timeout; rolled back
"""

"""crowdflex Crowd Balancing Platform: the TSO, aggregator and device roles on top of the VTN,
the VEN and the privacy layer; the market rules, the flexibility pool, the device models, the
live conformance suite and the ``crowdflex`` command.

Its own errors, under the message layer's root; an offer the TSO refuses on the wire is also
the message layer's InvalidData, so the VEN is answered with its OpenADR response code::

    CrowdflexError (schemas)
    +-- CbpError                  the platform's own input and rules (cbp.errors)
        +-- MarketRulesError      market rules out of range; also a ValueError (cbp.market)
        +-- NoSuchIsp             a time outside every ISP; also a ValueError (cbp.market)
        +-- AwardError            an award that does not fit its offer; also a ValueError
        +-- ValidationError       delivery data that cannot be validated; also a ValueError
        +-- PoolConfigError       a pool setting out of range; also a ValueError (cbp.pool)
        +-- DeviceParamsError     a device simulator parameter out of range; also a ValueError
                                  (cbp.devices)
        +-- SettleInputError      a settlement CSV value that is no number; also a ValueError
                                  (cbp.cli.settle)
        +-- ConformanceError      the live conformance suite (cbp.conformance)
            +-- CaseFailed        a case's own check failed; the message is the verdict's reason
            +-- OperatorError     an operator step could not be carried out
        +-- OfferRefused          the TSO refuses an offer; also an InvalidData, answered 454
                                  (cbp.roles.tso)

The ValueError bases stay because the ``crowdflex`` commands catch ValueError around reading
configuration and serving (cbp.cli), and the TSO reads an unreadable offer as one
(cbp.roles.tso).
"""

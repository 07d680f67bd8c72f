"""How the VTN's HTTP layer logs requests it could not parse.

aiohttp answers a malformed request (bad request line, over-long header, broken chunking) with
HTTP 400 and closes the connection, then logs it at ERROR with a traceback. That is the peer's
fault, not the VTN's, and anyone who can open a connection could fill the logs with such
"errors". The VTN's request handlers therefore log through ``crowdflex.vtn.http``, whose filter
turns those records into one INFO line without a traceback, aiohttp's reason (which quotes the
peer's bytes over several lines) escaped and cut by :func:`schemas.logtext.escaped`. A request
body that does not decode in its Content-Encoding is answered 400 and logged once by
:mod:`vtn.transport`; aiohttp's record of draining the rest of it afterwards is lowered to DEBUG.
Anything else aiohttp logs there (a failure of the VTN's own) keeps its level and traceback.
"""

from __future__ import annotations

import logging

from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web import RequestPayloadError

from schemas.logtext import escaped

__all__ = ["http_logger"]

_NAME = "crowdflex.vtn.http"


class _PeerErrorsAsInfo(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, RequestPayloadError) and _peer_fault(error.__cause__):
            # aiohttp draining a body that does not decode (e.g. no gzip under Content-Encoding:
            # gzip) after the handler answered it: the transport has logged that answer once
            record.msg = f"{record.getMessage()}: unreadable request body drained: {error}"
            record.args = None
            record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
            record.exc_info = record.exc_text = None
        elif _peer_fault(error):
            assert isinstance(error, HttpProcessingError)
            record.msg = (f"{record.getMessage()}: refused with HTTP {error.code}: "
                          f"{escaped(error.message)}")
            record.args = None
            record.levelno, record.levelname = logging.INFO, logging.getLevelName(logging.INFO)
            record.exc_info = record.exc_text = None
        return True


def _peer_fault(error: BaseException | None) -> bool:
    return isinstance(error, HttpProcessingError) and error.code < 500


def http_logger() -> logging.Logger:
    """The logger for the VTN's request handlers (its filter is installed once per process)."""
    logger = logging.getLogger(_NAME)
    if not any(isinstance(f, _PeerErrorsAsInfo) for f in logger.filters):
        logger.addFilter(_PeerErrorsAsInfo())
    return logger

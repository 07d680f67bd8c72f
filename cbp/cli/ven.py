"""`crowdflex ven`: run a VEN -- register with a VTN, then poll (or take pushes) until stopped.

Reads a TOML file (``examples/ven.toml`` documents every key). Every event is answered with the
configured ``opt`` (an application embeds :class:`ven.VenClient` with its own handler instead);
reports made by an embedding application go through the durable outbox at ``outbox`` (a relative
path lives in the state directory, ``--state-dir``, not next to the TOML file). Runs until
SIGINT/SIGTERM or, in pull mode, until the VTN cancels its registration (logged at WARNING; exit
0), then closes the client (owned tasks awaited), the push listener and the outbox.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import sys
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from schemas.logtext import escaped

from . import SubCommands
from ._process import (
    add_log_level,
    add_state_dir,
    configure_logging,
    state_key,
    state_path,
    stop_on_signals,
)

if TYPE_CHECKING:
    from schemas import Codec
    from ven import Backoff, VenClient
    from ven.config import VenConfig

__all__ = ["register"]

log = logging.getLogger("crowdflex.ven")

_EPILOG = """\
configuration keys (TOML, see examples/ven.toml):
  vtn_url            root URL of the VTN, e.g. https://vtn.example:8443 (the 2.0b service
                     paths /OpenADR2/Simple/2.0b/... are added)
  ven_name           the venName sent in oadrCreatePartyRegistration
  outbox             SQLite file of the durable report outbox: reports made while the VTN is
                     unreachable wait there and are sent later, in order, exactly once
  poll_interval_s    seconds between polls when the VTN has nothing queued (default: the
                     VTN's oadrRequestedOadrPollFreq); the VEN polls again at once while
                     the VTN has more
  request_timeout_s  timeout of every request to the VTN (default 30)
  mode               "pull" (oadrPoll, default), "push" (the VTN POSTs to this VEN) or
                     "xmpp" (both are clients of an XMPP server; then no vtn_url)
  opt                answer to every event: "optIn" (default) or "optOut"
  [tls] cert, key    this VEN's certificate and key (its fingerprint is its venID)
  [tls] ca           the CA the VTN's certificate must chain to
  [tls] profile      "tls1.3" (default), "openadr-tls1.2" or "openadr-tls1.2+tls1.3"
  [push] host, port  where the push listener binds (push mode only; port required)
  [push] url         the transport address announced to the VTN (default https://host:port)
  [xmpp] vtn_jid     the VTN's full JID (xmpp mode; the server names it by its certificate)
  [xmpp] host, port, domain, resource  the XMPP server (default 127.0.0.1:5222, "localhost")
                     and this VEN's resource (default "ven")
  [backoff] base_s, cap_s  exponential back-off with jitter while the VTN is unreachable
  [signatures] sign  sign every payload (with [signatures] cert/key, default the [tls] pair)
  [signatures] trusted, require, replay_window_s  verify the VTN's signed payloads against
                     these PEM files; require: refuse unsigned ones
"""


def register(commands: SubCommands) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "ven",
        help="run an OpenADR 2.0b VEN (client): register, then poll or take pushes",
        description="Register with an OpenADR 2.0b VTN over mutual TLS, then poll it (pull "
        "mode) or listen for its HTTP pushes (push mode) until interrupted (SIGINT/SIGTERM) "
        "or, in pull mode, until the VTN cancels the registration. "
        "Every event is answered with the configured opt. Transport failures are retried with "
        "exponential back-off; the VEN re-registers when the VTN asks or forgets it.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", type=Path, required=True, metavar="FILE",
                        help="TOML configuration file (keys below and in examples/ven.toml)")
    parser.add_argument("--vtn-url", help="root URL of the VTN (overrides 'vtn_url')")
    parser.add_argument("--poll-interval", type=float, metavar="SECONDS",
                        help="seconds between empty polls (overrides 'poll_interval_s')")
    add_state_dir(parser, "the report outbox")
    add_log_level(parser)
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from ven.config import ConfigError, load_config, wire_codec

    configure_logging(args.log_level, args.log_format)
    try:
        config = load_config(args.config)
        if args.vtn_url is not None:
            config = dataclasses.replace(config, vtn_url=args.vtn_url)
        if (outbox := state_key(args.config, "outbox")) is not None:
            config = dataclasses.replace(config, outbox_path=state_path(outbox, args.state_dir))
        if args.poll_interval is not None:
            config = dataclasses.replace(config,
                                         poll_interval=timedelta(seconds=args.poll_interval))
    except ConfigError as exc:
        print(f"crowdflex ven: {exc}", file=sys.stderr)
        return 2
    try:
        codec = wire_codec(config)
    except (ConfigError, ValueError, OSError) as exc:
        print(f"crowdflex ven: [signatures]: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(config, codec))
    except ConfigError as exc:
        print(f"crowdflex ven: {exc}", file=sys.stderr)
        return 2
    except (ValueError, OSError) as exc:
        print(f"crowdflex ven: {exc}", file=sys.stderr)
        return 1
    return 0


async def _serve(config: VenConfig, codec: Codec) -> None:
    from schemas import Event
    from ven import Hooks, Outbox, PushReceiver, VenClient
    from ven.config import TransportMode, client_settings, tls_files
    from ven.tls import server_context
    from ven.xmpp import XmppLink

    def on_event(event: Event) -> str:
        log.info("event %s (modification %d): %s", escaped(event.event_id),
                 event.modification_number, config.opt)
        return str(config.opt)

    settings = client_settings(config, codec=codec, hooks=Hooks(on_event=on_event))
    link, backoff = settings.connection.link, settings.connection.backoff
    stop = stop_on_signals()
    config.outbox_path.parent.mkdir(parents=True, exist_ok=True)
    async with await Outbox.open(config.outbox_path) as outbox, VenClient(
        settings, outbox=outbox,
    ) as client:
        if config.mode is TransportMode.PULL:
            worker = client.start_polling()  # registers first, with back-off
        elif isinstance(link, XmppLink):  # the VTN sends through the server; nothing to poll
            link.serve(client)
            worker = client.spawn(_register_until_done(client, backoff, stop))
            log.info("on XMPP as %s", link.address)
        else:
            cert, key, ca = tls_files(config)
            receiver = PushReceiver(client, server_context(
                cert=cert, key=key, ca=ca, profile=config.tls_profile),
                host=config.push_host, port=config.push_port)
            await receiver.start()
            log.info("push listener on %s", receiver.url)
            worker = client.spawn(_register_until_done(client, backoff, stop))
        try:
            await _until(stop, worker if config.mode is TransportMode.PULL else None)
        finally:
            if config.mode is TransportMode.PUSH:
                await receiver.stop()


async def _register_until_done(client: VenClient, backoff: Backoff, stop: asyncio.Event
                               ) -> None:
    from ven import VtnRefused, VtnUnavailable

    attempt = 0
    while not stop.is_set():
        try:
            await client.register()
            return
        except (VtnUnavailable, VtnRefused) as error:
            delay = backoff.delay(attempt)
            attempt += 1
            log.warning("registration failed (%s); retry %d in %.3f s", escaped(error), attempt,
                        delay)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await stop.wait()


async def _until(stop: asyncio.Event, poller: asyncio.Task[object] | None) -> None:
    """Wait for a signal; the poll loop ending (the VTN cancelled us) also stops the VEN."""
    waiter: asyncio.Future[object] = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({waiter, *((poller,) if poller is not None else ())},
                           return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()

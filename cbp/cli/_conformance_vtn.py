"""`crowdflex conformance vtn`: play a VEN against a VTN under test (cbp.conformance), over
Simple HTTP (pull or push) or XMPP.

Exit codes: 0 every selected case passed, 1 some failed, 2 the command could not run (a missing
file, an unknown case ID, no admin token, an unwritable report).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import TextIO

from cbp.cli import SubCommands
from cbp.cli._conformance_run import (
    add_run_options,
    add_xmpp_server_options,
    fail,
    write_outputs,
    xmpp_server_address,
)
from cbp.conformance import (
    AdminApiOperator,
    CommandOperator,
    Operator,
    PromptOperator,
    html_page,
    junit_xml,
    print_cases,
    print_result,
    print_summary,
    run_cases,
    select,
    vtn_catalogue,
)
from cbp.conformance.session import HarnessSettings
from cbp.conformance.vtn_address import XmppAddress
from schemas import TransportName
from schemas.identity import TlsProfile

__all__ = ["add_vtn_suite", "run_vtn"]

_OPERATORS = ("crowdflex-admin", "prompt", "command")


def add_vtn_suite(suites: SubCommands) -> None:
    vtn: argparse.ArgumentParser = suites.add_parser(
        "vtn",
        help="play a VEN against a VTN under test and judge it case by case",
        description="Run the live conformance cases against a VTN over Simple HTTP or XMPP with "
        "mutual TLS (RSA or ECC certificates): registration, events, reports, opt and general "
        "cases (N1/E1/R1/P1/G1 in pull mode, N0/E0/R0/P0/G0 with --push and over XMPP, which "
        "delivers by push), with passive rules checked on every reply (those about one "
        "transport only over it). Cases that need the VTN to act go through the operator. "
        "Exit 0 all passed, 1 some failed, 2 could not run.",
    )
    vtn.add_argument("--transport", choices=[t.value for t in TransportName],
                     default=TransportName.SIMPLE_HTTP.value,
                     help="how the harness VEN reaches the VTN (default simpleHttp); xmpp: as "
                     "a client of --xmpp-server named by --cert, sending IQs to --vtn-jid")
    vtn.add_argument("--url", help="the VTN's Simple HTTP root, e.g. "
                     "https://vtn.example:8443/OpenADR2/Simple/2.0b")
    vtn.add_argument("--vtn-jid", metavar="JID", help="with --transport xmpp: the JID the "
                     "VTN's services answer at (profile 9.3.2), e.g. "
                     "0a1b2c3d4e5f60718293@xmpp.example/openadr")
    add_xmpp_server_options(vtn)
    vtn.add_argument("--cert", type=Path, metavar="PEM", help="the harness VEN's certificate")
    vtn.add_argument("--key", type=Path, metavar="PEM", help="its private key")
    vtn.add_argument("--ca", type=Path, metavar="PEM", help="CA the VTN's certificate (and the "
                     "XMPP server's) chains to")
    vtn.add_argument("--push", action="store_true",
                     help="register the harness VEN for push: it serves HTTPS with its own "
                     "certificate (which must name --push-host) and the VTN POSTs to it")
    vtn.add_argument("--push-host", default="127.0.0.1", metavar="ADDRESS",
                     help="address the harness VEN's push receiver serves on (default 127.0.0.1)")
    vtn.add_argument("--signed", action="store_true",
                     help="sign every payload with --cert/--key (ReplayProtect included), check "
                     "the VTN's signed replies against --ca, and run the signature cases")
    vtn.add_argument("--operator", choices=_OPERATORS, default="prompt",
                     help="who carries out operator steps: crowdflex's admin API, a person at "
                     "this terminal (default), or --command")
    vtn.add_argument("--admin-url", default="http://127.0.0.1:8081",
                     help="crowdflex admin API (with --operator crowdflex-admin)")
    vtn.add_argument("--admin-token-env", default="CROWDFLEX_ADMIN_TOKEN", metavar="VAR",
                     help="environment variable holding the admin bearer token")
    vtn.add_argument("--command", metavar="CMD", help="with --operator command: a shell "
                     "command run per step, the step as JSON on stdin ({action, ven_id, params,"
                     " instruction}); exit status 0 means done")
    vtn.add_argument("--tls-profile", choices=[p.value for p in TlsProfile],
                     default=TlsProfile.OPENADR_TLS12_OR_TLS13.value,
                     help="TLS versions and suites the harness offers")
    vtn.add_argument("--wait", type=float, default=30.0, metavar="S",
                     help="how long to poll for an operator's act to reach the VEN (default 30)")
    add_run_options(vtn)
    vtn.set_defaults(run=run_vtn)


def _operator(args: argparse.Namespace) -> Operator | str:
    """The chosen operator, or the reason it cannot be built."""
    match args.operator:
        case "crowdflex-admin":
            token = os.environ.get(args.admin_token_env, "")
            if not token:
                return f"set {args.admin_token_env} to the admin API's bearer token"
            return AdminApiOperator(args.admin_url, token)
        case "command":
            if not args.command:
                return "--operator command needs --command CMD"
            return CommandOperator(args.command)
        case _:
            return PromptOperator()


def _xmpp_target(args: argparse.Namespace) -> XmppAddress | str | None:
    """Where the VTN serves XMPP (None over Simple HTTP), or why the options do not say."""
    if args.transport != TransportName.XMPP:
        return None
    if args.signed:
        return "--signed is Simple HTTP only (XMPP carries no payload signatures)"
    if not args.vtn_jid:
        return "--transport xmpp needs --vtn-jid"
    address = xmpp_server_address(args.xmpp_server)
    if isinstance(address, str):
        return address
    return XmppAddress(host=address[0], port=address[1], domain=args.xmpp_domain,
                       jid=args.vtn_jid)


def run_vtn(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    transport = TransportName(args.transport)
    push = args.push or transport is TransportName.XMPP
    try:
        cases = select(args.only, vtn_catalogue(push=push, signed=args.signed))
    except ValueError as exc:
        return fail(str(exc))
    if args.list:
        print_cases(cases, out, transport=transport)
        return 0
    target = _xmpp_target(args)
    if isinstance(target, str):
        return fail(target)
    needed = ("cert", "key", "ca") if target else ("url", "cert", "key", "ca")
    missing = [f"--{name}" for name in needed if not getattr(args, name)]
    if missing:
        return fail(f"missing {', '.join(missing)}")
    absent = [str(p) for p in (args.cert, args.key, args.ca) if not p.is_file()]
    if absent:
        return fail(f"no such file: {', '.join(absent)}")
    operator = _operator(args)
    if isinstance(operator, str):
        return fail(operator)
    settings = HarnessSettings(url=args.url or "", cert=args.cert, key=args.key, ca=args.ca,
                               tls_profile=TlsProfile(args.tls_profile), wait_timeout_s=args.wait,
                               push=push, push_host=args.push_host, signed=args.signed,
                               xmpp=target)
    results = asyncio.run(run_cases(settings, operator, cases,
                                    on_result=lambda r: print_result(r, out)))
    print_summary(results, out)
    unwritten = write_outputs(args, lambda: junit_xml(results),
                              lambda: html_page(results, target=settings.target))
    if unwritten is not None:
        return unwritten
    return 0 if all(r.passed for r in results) else 1

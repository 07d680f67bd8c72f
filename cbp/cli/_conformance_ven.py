"""`crowdflex conformance ven`: serve a harness VTN (Simple HTTP pull or push, signed or not, or
XMPP) and judge a VEN under test; its operator (crowdflex's client itself, a person, or a
command) makes it opt.

Exit codes: 0 every selected case passed, 1 some failed, 2 the command could not run (a missing
file, an unknown case ID, a port already taken, an unwritable report).
"""

from __future__ import annotations

import argparse
import asyncio
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
    VEN_RULES,
    CommandOperator,
    CommandVen,
    CrowdflexVen,
    Operator,
    PromptOperator,
    PromptVen,
    VenHarnessSettings,
    VenUnderTest,
    html_page,
    junit_xml,
    print_cases,
    print_result,
    print_summary,
    run_ven_cases,
    select,
    ven_catalogue,
)
from cbp.conformance.ven_starters import URL_VARIABLE, XMPP_VARIABLES
from schemas.identity import TlsProfile
from vtn.settings import XmppSettings

__all__ = ["add_ven_suite", "run_ven"]

_STARTERS = ("prompt", "command", "crowdflex")
_OPERATORS = ("crowdflex", "prompt", "command")


def add_ven_suite(suites: SubCommands) -> None:
    ven: argparse.ArgumentParser = suites.add_parser(
        "ven",
        help="serve a VTN to a VEN under test and judge it case by case",
        description="Serve a harness VTN over Simple HTTP with mutual TLS, or over XMPP through "
        "an XMPP server, and run the live conformance cases against the VEN pointed at it: "
        "registration, events, reports and opts (N1/E1/R1/P1 in pull mode, N0/E0/R0/P0 with "
        "--push or over XMPP, where the VTN sends without polls), with passive rules checked on "
        "every request (over XMPP the HTTP framing rules VR03/VR04 do not apply; VR10 is "
        "XMPP's); with --signed (Simple HTTP only) XML signatures both ways and the signature "
        "cases (G1, or G0 with --push). The opt cases need the VEN to act on its own: the "
        "operator makes it send and cancel opts. Exit 0 all passed, 1 some failed, 2 could not "
        "run.",
    )
    ven.add_argument("--cert", type=Path, metavar="PEM",
                     help="the harness VTN's certificate: its HTTPS server certificate (the VEN "
                     "must trust its CA), over XMPP the client certificate it logs in with")
    ven.add_argument("--key", type=Path, metavar="PEM", help="its private key")
    ven.add_argument("--ca", type=Path, metavar="PEM",
                     help="CA the VEN's client certificate must chain to (over XMPP the XMPP "
                     "server checks the VEN's; the harness checks the server's against --ca)")
    ven.add_argument("--host", default="127.0.0.1", help="address to serve on (Simple HTTP)")
    ven.add_argument("--port", type=int, default=0,
                     help="port to serve on (0: any free one; Simple HTTP)")
    ven.add_argument("--transport", choices=("simpleHttp", "xmpp"), default="simpleHttp",
                     help="simpleHttp (default): serve HTTPS; xmpp: log in to the XMPP server "
                     "at --xmpp-server with --cert/--key (SASL EXTERNAL: the server "
                     "names the harness by that certificate's fingerprint) and play the VTN "
                     "over IQs; the VEN is sent to at the JID it registers from (push cases)")
    add_xmpp_server_options(ven)
    ven.add_argument("--xmpp-resource", default="openadr",
                     help="the resource of the harness's JID, <fingerprint>@domain/resource "
                     "(default openadr)")
    ven.add_argument("--push", action="store_true",
                     help="the VEN registers for push: the harness POSTs to its transport "
                     "address, which must present the VEN's own certificate")
    ven.add_argument("--signed", action="store_true",
                     help="sign every payload with --cert/--key (ReplayProtect included; the VEN "
                     "must trust that certificate's CA for signatures), refuse every request "
                     "not signed by a certificate chaining to --ca, and run the signature cases")
    ven.add_argument("--ven", choices=_STARTERS, default="prompt", dest="starter",
                     help="how the VEN under test starts: a person points it at the printed "
                     f"address (default), --command runs it (the URL in ${URL_VARIABLE}; over "
                     f"XMPP the server and the harness's JID in ${', $'.join(XMPP_VARIABLES)}),"
                     " or crowdflex's own VEN client in this process")
    ven.add_argument("--command", metavar="CMD",
                     help="with --ven command: a shell command that starts the VEN; its "
                     "process group is stopped after the last case")
    ven.add_argument("--ven-cert", type=Path, metavar="PEM",
                     help="with --ven crowdflex: the VEN's client certificate")
    ven.add_argument("--ven-key", type=Path, metavar="PEM", help="with --ven crowdflex: its key")
    ven.add_argument("--operator", choices=_OPERATORS,
                     help="who makes the VEN send and cancel opts: crowdflex's VEN client "
                     "itself (the default with --ven crowdflex, and only with it), a person at "
                     "this terminal (the default otherwise), or --operator-command")
    ven.add_argument("--operator-command", metavar="CMD",
                     help="with --operator command: a shell command run per step, the step as "
                     "JSON on stdin ({action, ven_id, params, instruction}); exit status 0 means "
                     "done")
    ven.add_argument("--poll-freq", type=int, default=5, metavar="S",
                     help="oadrRequestedOadrPollFreq the harness gives, whole seconds (default 5)")
    ven.add_argument("--report-back", type=int, default=5, metavar="S",
                     help="granularity and reportBackDuration of requested reports (default 5)")
    ven.add_argument("--tls-profile", choices=[p.value for p in TlsProfile],
                     default=TlsProfile.OPENADR_TLS12_OR_TLS13.value,
                     help="TLS versions and suites the harness accepts (over XMPP: offers the "
                     "server)")
    ven.add_argument("--wait", type=float, default=60.0, metavar="S",
                     help="how long a case waits for the VEN's message (default 60)")
    add_run_options(ven)
    ven.set_defaults(run=run_ven)


def _starter(args: argparse.Namespace, out: TextIO) -> VenUnderTest | str:
    """The chosen way to start the VEN, or the reason it cannot be built."""
    match args.starter:
        case "command":
            return CommandVen(args.command) if args.command else \
                "--ven command needs --command CMD"
        case "crowdflex":
            missing = [f"--{n.replace('_', '-')}" for n in ("ven_cert", "ven_key")
                       if getattr(args, n) is None]
            if missing:
                return f"--ven crowdflex needs {', '.join(missing)}"
            return CrowdflexVen(cert=args.ven_cert, key=args.ven_key, ca=args.ca,
                                tls_profile=TlsProfile(args.tls_profile), push=args.push,
                                signed=args.signed)
        case _:
            return PromptVen(output=out)


def _operator(args: argparse.Namespace, starter: VenUnderTest, out: TextIO) -> Operator | str:
    """Who makes the VEN act on its own, or the reason it cannot be built."""
    match args.operator or ("crowdflex" if args.starter == "crowdflex" else "prompt"):
        case "crowdflex":
            return starter if isinstance(starter, CrowdflexVen) else \
                "--operator crowdflex needs --ven crowdflex"
        case "command":
            return CommandOperator(args.operator_command) if args.operator_command else \
                "--operator command needs --operator-command CMD"
        case _:
            return PromptOperator(output=out)


def _xmpp(args: argparse.Namespace) -> XmppSettings | str | None:
    """The harness VTN's XMPP login (None over Simple HTTP), or why the options do not say."""
    if args.transport != "xmpp":
        return None
    if args.signed:
        return ("--signed is Simple HTTP only: the XMPP library re-serialises payloads, which "
                "their signatures do not survive")
    address = xmpp_server_address(args.xmpp_server)
    if isinstance(address, str):
        return address
    return XmppSettings(host=address[0], port=address[1], domain=args.xmpp_domain,
                        resource=args.xmpp_resource, connect_timeout_s=args.wait)


def run_ven(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    xmpp = _xmpp(args)
    if isinstance(xmpp, str):
        return fail(xmpp)
    push = args.push or xmpp is not None
    try:
        cases = select(args.only, ven_catalogue(push=push, signed=args.signed))
    except ValueError as exc:
        return fail(str(exc))
    if args.list:
        print_cases(cases, out, rules=VEN_RULES, checked="request")
        return 0
    missing = [f"--{name}" for name in ("cert", "key", "ca") if not getattr(args, name)]
    if missing:
        return fail(f"missing {', '.join(missing)}")
    files = [args.cert, args.key, args.ca, args.ven_cert, args.ven_key]
    absent = [str(p) for p in files if p is not None and not p.is_file()]
    if absent:
        return fail(f"no such file: {', '.join(absent)}")
    if args.poll_freq < 1 or args.report_back < 1:
        return fail("--poll-freq and --report-back are whole seconds, at least 1")
    starter = _starter(args, out)
    if isinstance(starter, str):
        return fail(starter)
    operator = _operator(args, starter, out)
    if isinstance(operator, str):
        return fail(operator)
    settings = VenHarnessSettings(
        cert=args.cert, key=args.key, ca=args.ca, host=args.host, port=args.port,
        tls_profile=TlsProfile(args.tls_profile), poll_freq_s=args.poll_freq,
        report_back_s=args.report_back, wait_timeout_s=args.wait, push=push,
        signed=args.signed, xmpp=xmpp)
    try:
        results = asyncio.run(run_ven_cases(settings, starter, cases, operator=operator,
                                            on_result=lambda r: print_result(r, out)))
    except OSError as exc:  # ConnectionError: the XMPP server gave the harness no session
        where = f"XMPP server {args.xmpp_server}" if xmpp is not None else \
            f"{args.host}:{args.port}"
        return fail(f"cannot serve the harness VTN on {where}: {exc}")
    print_summary(results, out)
    unwritten = write_outputs(
        args, lambda: junit_xml(results, suite="crowdflex.conformance.ven"),
        lambda: html_page(results, target=args.command or args.starter, side="ven",
                          rules=VEN_RULES))
    if unwritten is not None:
        return unwritten
    return 0 if all(r.passed for r in results) else 1

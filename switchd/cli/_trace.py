"""`switchd trace`: the SIP ladder of a call as the switch itself saw it, like sngrep.

    switchd trace CALL-ID [--full] [--json]             GET /trace/{call_id}: a recent call
    switchd trace [CALL-ID] --follow [--full] [--json]  GET /trace/{call_id}?follow=1: live, as it
                                                        happens (every call without CALL-ID)

Three lanes — caller, switchd, gateway — and one arrow per message between the two it went
between: the A-leg (`leg` "a") is caller ↔ switchd, the B-leg ("b") switchd ↔ gateway; `direction`
"in" points at switchd. Times are seconds since the call's first message. `--full` prints each
message's text under its arrow.

Following a call opens the stream first and then reads what the switch already kept, so no
message falls between the two; one seen in both is printed once.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime

from rich.console import Console
from rich.markup import escape
from rich.text import Text

from ._client import ApiClient, ApiRefusal, JsonObject, call_path
from ._common import EXIT_USAGE, CliError, Commands, Parser, stdout
from ._connect import api_client, api_options
from ._views import children, clock, parse_time, sip_style, text

LANE = 34  # characters between two lifelines
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
ALL_CALLS = "*"
_CALL_COLUMN = 14


@dataclass(frozen=True, slots=True)
class Message:
    """One message of a trace, as GET /trace answers it."""

    call_id: str | None
    at: datetime | None
    at_text: str
    incoming: bool
    leg: str  # "a": caller ↔ switchd; "b": switchd ↔ gateway
    peer: str
    transport: str
    summary: str
    text: str

    @classmethod
    def read(cls, obj: JsonObject) -> Message:
        return cls(call_id=text(obj, "call_id"), at=parse_time(obj.get("at")), at_text=text(obj, "at") or "",
                   incoming=text(obj, "direction") == "in", leg=text(obj, "leg") or "a",
                   peer=text(obj, "peer") or "",
                   transport=text(obj, "transport") or "", summary=text(obj, "summary") or "?",
                   text=text(obj, "text") or "")

    @property
    def key(self) -> tuple[str, str, bool, str, str]:
        """What tells two messages apart (the same message from history and stream has one key)."""
        return (self.call_id or "", self.at_text, self.incoming, self.leg, self.summary)


def add_parsers(commands: Commands, logging_options: Parser) -> None:
    """`trace`."""
    trace = commands.add_parser("trace", parents=[logging_options, api_options()],
                                help="the SIP ladder of a call",
                                description="The SIP ladder of a recent call (caller, switchd, gateway, with "
                                            "times), from the switch's own trace buffer; --follow shows live "
                                            "calls as they happen.")
    trace.add_argument("call_id", metavar="CALL-ID", nargs="?",
                       help="the caller's Call-ID (with --follow and none: every call)")
    trace.add_argument("--follow", "-f", action="store_true",
                       help="keep printing messages as they happen (^C stops)")
    trace.add_argument("--full", action="store_true", help="each message's full text under its arrow")
    trace.add_argument("--json", action="store_true", help="the API's JSON (NDJSON lines with --follow)")
    trace.set_defaults(handler=_cmd_trace, default_level=logging.WARNING)


def _cmd_trace(args: argparse.Namespace) -> int:
    if args.call_id is None and not args.follow:
        raise CliError("trace: give a CALL-ID (or --follow for every call)", EXIT_USAGE)
    with api_client(args) as client:
        if args.follow:
            return _follow(client, args)
        body = client.get(call_path("/trace", args.call_id))
    if args.json:
        print(json.dumps(body, indent=2, ensure_ascii=False))
        return 0
    messages = [Message.read(m) for m in children(body, "messages")]
    console = stdout()
    ladder = Ladder(console, full=args.full)
    ladder.header(text(body, "call_id") or args.call_id, messages)
    for message in messages:
        ladder.print(message)
    console.print(f"{len(messages)} message{'s' if len(messages) != 1 else ''}")
    return 0


def _follow(client: ApiClient, args: argparse.Namespace) -> int:
    wanted = args.call_id or ALL_CALLS
    path = call_path("/trace", wanted)
    live = client.stream(path, follow=1)  # first, so nothing happens between history and stream
    history: list[JsonObject] = []
    if wanted != ALL_CALLS:
        try:
            history = children(client.get(path), "messages")
        except ApiRefusal as exc:
            if exc.status != 404:  # 404: nothing kept yet (the call has not started); the stream shows it
                raise
    console = stdout()
    ladder = Ladder(console, full=args.full, calls=wanted == ALL_CALLS)
    if not args.json:
        ladder.header(None if wanted == ALL_CALLS else wanted, [Message.read(m) for m in history])
    seen: set[tuple[str, str, bool, str, str]] = set()
    try:
        for obj in _chain(history, live):
            message = Message.read(obj)
            if message.call_id is None and wanted != ALL_CALLS:
                message = replace(message, call_id=wanted)
            if message.key in seen:
                continue
            seen.add(message.key)
            if args.json:
                print(json.dumps(obj, ensure_ascii=False), flush=True)
            else:
                ladder.print(message)
    except KeyboardInterrupt:  # how a follow is ended: not an error
        pass
    return 0


def _chain(first: Iterable[JsonObject], then: Iterator[JsonObject]) -> Iterator[JsonObject]:
    yield from first
    yield from then


class Ladder:
    """Prints messages as arrows between the caller, switchd and gateway lifelines, one line each."""

    def __init__(self, console: Console, *, full: bool = False, calls: bool = False) -> None:
        self._console = console
        self._full = full
        self._calls = calls  # a column with the Call-ID: messages of many calls interleave
        self._first: dict[str, datetime] = {}

    def header(self, call_id: str | None, messages: list[Message]) -> None:
        caller = next((m.peer for m in messages if m.leg == "a"), "")
        gateway = next((m.peer for m in messages if m.leg == "b"), "")
        if call_id is not None:
            start = clock(messages[0].at_text) if messages else ""
            first = f"  [dim]first message {start} UTC[/]" if start else ""
            self._console.print(f"[bold]Call-ID[/] {escape(call_id)}{first}")
        lifelines = (("caller", caller), ("switchd", ""), ("gateway", gateway))
        names = [_CONTROL.sub(" ", f"{role} {peer}").strip() for role, peer in lifelines]
        line = ""
        for lifeline, name in enumerate(names):  # each name centred over its lifeline
            line = line.ljust(max(0, self._indent() + lifeline * LANE - len(name) // 2)) + name + " "
        self._console.print(Text(line.rstrip(), style="bold"))

    def _indent(self) -> int:
        return 10 + (_CALL_COLUMN + 1 if self._calls else 0)

    def print(self, message: Message) -> None:
        line = Text()
        if self._calls:
            line.append((message.call_id or "")[:_CALL_COLUMN].ljust(_CALL_COLUMN) + " ", style="dim")
        line.append(self._time(message).rjust(9) + " ")
        lanes = [Text("│"), Text(" " * (LANE - 1)), Text("│"), Text(" " * (LANE - 1)), Text("│")]
        arrow = _arrow(message.summary, pointing_right=(message.leg == "a") == message.incoming)
        lanes[1 if message.leg == "a" else 3] = arrow
        for part in lanes:
            line.append_text(part)
        self._console.print(line, soft_wrap=True)
        if self._full and message.text:
            for text_line in message.text.rstrip("\r\n").split("\n"):
                self._console.print(Text(" " * 10 + "  " + text_line.rstrip("\r"), style="dim"),
                                    soft_wrap=True)

    def _time(self, message: Message) -> str:
        if message.at is None:
            return "?"
        first = self._first.setdefault(message.call_id or "", message.at)
        return f"+{(message.at - first).total_seconds():.3f}s"


def _arrow(label: str, *, pointing_right: bool) -> Text:
    """`──INVITE sip:…──────▶` (or `◀──180 Ringing───`) exactly LANE - 1 characters long."""
    room = LANE - 1 - 4  # two dashes before the label, one after, the head
    label = _CONTROL.sub(" ", label)  # one message, one line, whatever the peer put in it
    shown = label if len(label) <= room else label[: room - 1] + "…"
    body = Text()
    if not pointing_right:
        body.append("◀")
    body.append("──")
    body.append(shown, style=sip_style(label))
    body.append("─" * (LANE - 1 - 3 - len(shown)))
    if pointing_right:
        body.append("▶")
    return body

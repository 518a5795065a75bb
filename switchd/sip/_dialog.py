"""Dialog state (RFC 3261 §12) for a UAC or a UAS, and the requests sent inside a dialog.

A B2BUA keeps two per call: the A-leg dialog is a UAS dialog (`Dialog.from_uas`, created from the
caller's INVITE), the B-leg dialog a UAC dialog (`Dialog.from_uac`, created from the callee's
first 1xx-with-tag or 2xx). What a dialog knows, and who changes it:

=================  ==========================================  ====================================
field              UAC (from our INVITE and their response)    UAS (from their INVITE)
=================  ==========================================  ====================================
call_id            the INVITE's                                the INVITE's
local_tag          From tag of our INVITE                      the tag we put in our To
remote_tag         To tag of their response                    From tag of their INVITE
local_seq          CSeq of our INVITE; +1 per new request      empty; 1 for our first request
remote_seq         empty; set by their first request           CSeq of their INVITE
remote_target      Contact of their response                   Contact of their INVITE
route_set          their response's Record-Route, reversed     their INVITE's Record-Route
state              early (1xx) → confirmed (2xx)               early → confirmed (`confirm()`)
=================  ==========================================  ====================================

`receive_response` and `receive_request` keep it current (target refresh by re-INVITE/UPDATE,
remote CSeq ordering, BYE); `make_request` builds BYE, re-INVITE, UPDATE, INFO, MESSAGE, OPTIONS
and the ACK to a 2xx (§12.2.1.1, §13.2.2.4, §15.1.1) with the route set, a fresh branch and the
right CSeq. A B2BUA relays a request from one of its dialogs into the other by `receive_request`
on the first and `make_request` on the second: CSeq, tags, target and route set are per dialog.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from ._address import NameAddr
from ._builders import DEFAULT_MAX_FORWARDS, make_response
from ._codes import Method, Status
from ._errors import LocalProtocolError, RemoteProtocolError
from ._headers import Headers
from ._ids import new_branch
from ._message import Request, Response
from ._uri import SipUri

log = logging.getLogger(__name__)

_TARGET_REFRESH = frozenset({Method.INVITE, Method.UPDATE})  # §12.2: methods that may change the target
_NO_NEW_SEQ = frozenset({Method.ACK, Method.CANCEL})  # §12.2.1.1, §12.2.2: reuse a CSeq number


class DialogState(StrEnum):
    """Early (a 1xx with a To tag), confirmed (a 2xx), or terminated (BYE, or a final error)."""

    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


class DialogRole(StrEnum):
    """Which side of the dialog-creating INVITE we were."""

    UAC = "uac"
    UAS = "uas"


@dataclass(frozen=True, slots=True)
class DialogId:
    """A dialog's identity from our side (§12): Call-ID, our tag, the peer's tag ('' if it has none)."""

    call_id: str
    local_tag: str
    remote_tag: str

    @classmethod
    def of_request(cls, request: Request) -> DialogId | None:
        """The id of the dialog an incoming request is in (To tag ours, From tag theirs); None when
        the request has no To tag (it is not in a dialog)."""
        local = request.to.tag
        if local is None:
            return None
        return cls(request.call_id, local, request.from_.tag or "")

    @classmethod
    def of_response(cls, response: Response) -> DialogId | None:
        """The id of the dialog a response to our request is in (From tag ours, To tag theirs); None
        when the response has no To tag (a 100, or an RFC 2543 peer)."""
        local = response.from_.tag
        remote = response.to.tag
        if local is None or remote is None:
            return None
        return cls(response.call_id, local, remote)


class Dialog:
    """The state of one dialog and the requests sent in it; see the module docstring.

    Build one with `from_uac` or `from_uas`. The attributes are read-only by convention: only the
    `receive_*`, `confirm` and `make_request` methods change them.
    """

    __slots__ = (
        "_invite_seq",
        "call_id",
        "local_contact",
        "local_party",
        "local_seq",
        "local_tag",
        "remote_party",
        "remote_seq",
        "remote_tag",
        "remote_target",
        "role",
        "route_set",
        "state",
        "via_sent_by",
        "via_transport",
    )

    def __init__(
        self,
        *,
        role: DialogRole,
        state: DialogState,
        call_id: str,
        local_tag: str,
        remote_tag: str,
        local_party: NameAddr,
        remote_party: NameAddr,
        local_seq: int | None,
        remote_seq: int | None,
        remote_target: SipUri,
        route_set: Iterable[NameAddr],
        local_contact: NameAddr | None,
        via_transport: str,
        via_sent_by: str,
    ) -> None:
        self.role: DialogRole = role
        self.state: DialogState = state
        self.call_id: str = call_id
        self.local_tag: str = local_tag
        self.remote_tag: str = remote_tag
        self.local_party: NameAddr = local_party  # From of our requests (without tag)
        self.remote_party: NameAddr = remote_party  # To of our requests (without tag)
        self.local_seq: int | None = local_seq
        self.remote_seq: int | None = remote_seq
        self.remote_target: SipUri = remote_target
        self.route_set: tuple[NameAddr, ...] = tuple(route_set)
        self.local_contact: NameAddr | None = local_contact  # Contact of our target-refresh requests
        self.via_transport: str = via_transport
        self.via_sent_by: str = via_sent_by
        # CSeq number of the last INVITE we sent: the ACK to its 2xx reuses it (§13.2.2.4).
        self._invite_seq: int | None = local_seq if role is DialogRole.UAC else None

    def __repr__(self) -> str:
        return f"<Dialog {self.role.value} {self.state.value} {self.id}>"

    @classmethod
    def from_uac(cls, invite: Request, response: Response) -> Dialog:
        """The dialog our `invite` created with `response` (a 101-299 with a To tag, or any 2xx), §12.1.2.

        Raises LocalProtocolError for a response that creates no dialog or an INVITE without our
        From tag.
        """
        if invite.method != Method.INVITE:
            raise LocalProtocolError(f"Dialog.from_uac needs the INVITE, got {invite.method!r}")
        local_tag = invite.from_.tag
        if local_tag is None:
            raise LocalProtocolError("Dialog.from_uac: our INVITE has no From tag (§8.1.1.3)")
        remote_tag = response.to.tag
        if not 101 <= response.status < 300 or (response.status < 200 and remote_tag is None):
            raise LocalProtocolError(
                f"a {response.status} {'with' if remote_tag else 'without'} a To tag creates no dialog (§12.1)"
            )
        contacts = response.contact
        via = invite.top_via
        return cls(
            role=DialogRole.UAC,
            state=DialogState.CONFIRMED if response.status >= 200 else DialogState.EARLY,
            call_id=invite.call_id,
            local_tag=local_tag,
            remote_tag=remote_tag or "",
            local_party=_untagged(invite.from_),
            remote_party=_untagged(invite.to),
            local_seq=invite.cseq.seq,
            remote_seq=None,
            # A 1xx may lack a Contact; the request URI stays the target until one arrives.
            remote_target=contacts[0].uri if contacts else invite.uri,
            route_set=reversed(response.record_routes),
            local_contact=invite.contact[0] if invite.contact else None,
            via_transport=via.transport,
            via_sent_by=via.sent_by,
        )

    @classmethod
    def from_uas(
        cls, invite: Request, local_tag: str, *, contact: NameAddr, state: DialogState = DialogState.EARLY
    ) -> Dialog:
        """The dialog we create by answering `invite` with To tag `local_tag` (§12.1.1).

        `contact` is the Contact we put in our responses. The Via of the requests we send in the
        dialog takes its sent-by from the contact's host and port, and its transport from the
        contact's ``transport`` URI parameter (TCP when absent). Use `state=CONFIRMED` when
        answering 2xx straight away, else call `confirm()` when the 2xx goes out.

        Raises RemoteProtocolError (400) when the INVITE has no Contact (§8.1.1.8).
        """
        if invite.method != Method.INVITE:
            raise LocalProtocolError(f"Dialog.from_uas needs the INVITE, got {invite.method!r}")
        contacts = invite.contact
        if not contacts:
            raise RemoteProtocolError("INVITE without a Contact cannot create a dialog", reason="Missing Contact")
        uri = contact.uri
        sent_by = uri.host if uri.port is None else f"{uri.host}:{uri.port}"
        return cls(
            role=DialogRole.UAS,
            state=state,
            call_id=invite.call_id,
            local_tag=local_tag,
            remote_tag=invite.from_.tag or "",
            local_party=_untagged(invite.to),
            remote_party=_untagged(invite.from_),
            local_seq=None,
            remote_seq=invite.cseq.seq,
            remote_target=contacts[0].uri,
            route_set=invite.record_routes,
            local_contact=contact,
            via_transport=(uri.param("transport") or "TCP").upper(),
            via_sent_by=sent_by,
        )

    @property
    def id(self) -> DialogId:
        """Call-ID, local tag, remote tag."""
        return DialogId(self.call_id, self.local_tag, self.remote_tag)

    @property
    def early(self) -> bool:
        """True while only a provisional response has created the dialog."""
        return self.state is DialogState.EARLY

    @property
    def confirmed(self) -> bool:
        """True once a 2xx has been sent or received."""
        return self.state is DialogState.CONFIRMED

    @property
    def terminated(self) -> bool:
        """True once a BYE was sent or received, or the dialog-creating INVITE failed."""
        return self.state is DialogState.TERMINATED

    def matches(self, request: Request) -> bool:
        """True when incoming `request` belongs to this dialog: same Call-ID, To tag is our tag and
        From tag is the peer's (§12.2.2)."""
        return (
            request.call_id == self.call_id
            and request.to.tag == self.local_tag
            and (request.from_.tag or "") == self.remote_tag
        )

    def confirm(self) -> None:
        """UAS: our 2xx to the INVITE went out; the early dialog is confirmed (§12.1.1)."""
        if self.state is DialogState.EARLY:
            self._set_state(DialogState.CONFIRMED)

    def receive_response(self, response: Response) -> None:
        """Update the dialog from a response to a request we sent in it (UAC side, mostly).

        A 1xx or 2xx to an INVITE with a Contact refreshes the remote target (§12.2.1.2); the first
        2xx confirms an early dialog and recomputes the route set from its Record-Route (§13.2.2.4);
        a final error to the INVITE of an early dialog terminates it, and a 481 or 408 to any
        request terminates a dialog (§12.2.1.2).

        Raises LocalProtocolError for a response whose To tag names another dialog (a forked
        answer: build that dialog with `from_uac` instead).
        """
        tag = response.to.tag
        if tag is not None and self.remote_tag and tag != self.remote_tag and response.status > 100:
            raise LocalProtocolError(
                f"a {response.status} with To tag {tag!r} belongs to another dialog than {self.id}"
            )
        status = response.status
        method = response.cseq.method
        if status in (Status.CALL_OR_TRANSACTION_DOES_NOT_EXIST, Status.REQUEST_TIMEOUT):
            self._set_state(DialogState.TERMINATED)
            return
        if method != Method.INVITE and method != Method.UPDATE:
            return
        if status >= 300:
            if self.state is DialogState.EARLY and method == Method.INVITE:
                self._set_state(DialogState.TERMINATED)
            return
        if status > 100 and response.contact:
            self.remote_target = response.contact[0].uri
        if status >= 200 and self.state is DialogState.EARLY and method == Method.INVITE:
            self.route_set = tuple(reversed(response.record_routes))
            self._set_state(DialogState.CONFIRMED)

    def receive_request(self, request: Request) -> Response | None:
        """Check and apply an incoming request of this dialog (§12.2.2).

        Returns None when the request is accepted (remote CSeq recorded; a re-INVITE or UPDATE with
        a Contact refreshes the remote target; a BYE terminates the dialog), or the response to
        reject it with, the dialog left as it was: a 500 when its CSeq is lower than the last one
        the peer used (out of order); a 400 when a re-INVITE's or UPDATE's Contact does not parse
        (its URI is read here, lazily, so this is where a bad one shows). ACK and CANCEL reuse their
        INVITE's CSeq and are never out of order.
        """
        if request.method in _NO_NEW_SEQ:
            return None
        seq = request.cseq.seq
        if self.remote_seq is not None and seq < self.remote_seq:
            log.info(
                "%s CSeq %d below remote CSeq %d: out of order",
                request.method,
                seq,
                self.remote_seq,
                extra={"call_id": self.call_id},
            )
            return make_response(request, Status.SERVER_INTERNAL_ERROR, "CSeq Out of Order", to_tag=self.local_tag)
        target = self.remote_target
        if request.method in _TARGET_REFRESH:
            try:
                contacts = request.contact
                if contacts:
                    target = contacts[0].uri
            except RemoteProtocolError as exc:
                log.info("%s with a bad Contact: %s", request.method, exc, extra={"call_id": self.call_id})
                return make_response(request, exc.status_hint, exc.reason or "Bad Contact", to_tag=self.local_tag)
        self.remote_seq = seq
        self.remote_target = target
        if request.method == Method.BYE:
            self._set_state(DialogState.TERMINATED)
        return None

    def make_request(
        self,
        method: Method | str,
        *,
        body: bytes = b"",
        headers: Iterable[tuple[str, str]] = (),
        branch: str | None = None,
    ) -> Request:
        """A new request in this dialog (§12.2.1.1): BYE, re-INVITE, UPDATE, INFO, or the ACK to a 2xx.

        Request-URI and Route come from the remote target and the route set (a strict-routing
        first hop gets the Request-URI, the remote target goes last in Route); From, To and Call-ID
        from the dialog; one Via with our sent-by and `branch` (a fresh one by default); CSeq is the
        local sequence number plus one — except for ACK, which reuses the CSeq number of the INVITE
        it acknowledges (§13.2.2.4). A re-INVITE or UPDATE carries our Contact. `headers` are
        appended (Content-Type with a body); sending a BYE terminates the dialog.

        Raises LocalProtocolError for CANCEL (use make_cancel), for an ACK when we sent no INVITE,
        and for a new request in a terminated dialog.
        """
        if method == Method.CANCEL:
            raise LocalProtocolError("CANCEL is not an in-dialog request: use make_cancel(invite) (§9.1)")
        if method == Method.ACK:
            if self._invite_seq is None:
                raise LocalProtocolError(f"no INVITE was sent in dialog {self.id}: nothing to ACK")
            seq = self._invite_seq
        else:
            if self.state is DialogState.TERMINATED:
                raise LocalProtocolError(f"cannot send {method} in terminated dialog {self.id}")
            seq = 1 if self.local_seq is None else self.local_seq + 1
            self.local_seq = seq
            if method == Method.INVITE:
                self._invite_seq = seq
        uri, routes = self._target_and_routes()
        out = Headers()
        out.add("Via", f"SIP/2.0/{self.via_transport} {self.via_sent_by};branch={branch or new_branch()}")
        out.add("Max-Forwards", str(DEFAULT_MAX_FORWARDS))
        for route in routes:
            out.add("Route", route)
        out.add("From", str(self.local_party.with_tag(self.local_tag)))
        to = self.remote_party.with_tag(self.remote_tag) if self.remote_tag else self.remote_party
        out.add("To", str(to))
        out.add("Call-ID", self.call_id)
        out.add("CSeq", f"{seq} {method}")
        if method in _TARGET_REFRESH and self.local_contact is not None:
            out.add("Contact", str(self.local_contact))
        for name, value in headers:
            out.add(name, value)
        if method == Method.BYE:
            self._set_state(DialogState.TERMINATED)
        return Request(method, uri, out, body)

    def _target_and_routes(self) -> tuple[SipUri, list[str]]:
        if not self.route_set:
            return self.remote_target, []
        first = self.route_set[0]
        if first.uri.param("lr") is not None:
            return self.remote_target, [str(route) for route in self.route_set]
        # §12.2.1.1 strict routing: the first hop becomes the Request-URI, the target the last Route.
        return first.uri, [*(str(route) for route in self.route_set[1:]), f"<{self.remote_target}>"]

    def _set_state(self, state: DialogState) -> None:
        if state is not self.state:
            if log.isEnabledFor(logging.DEBUG):  # its arguments (two enum values, the id) cost more than the test
                log.debug("dialog %s: %s -> %s", self.id, self.state.value, state.value,
                          extra={"call_id": self.call_id})
            self.state = state


def _untagged(address: NameAddr) -> NameAddr:
    params = tuple(p for p in address.params if p[0].lower() != "tag")
    return NameAddr(address.display_name, address.uri, params)

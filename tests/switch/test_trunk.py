"""Outbound registration with a trunk, against a fake registrar in-process and on virtual time.

The fake stands in for the gateway's link under its registered name (``gateway:carrier``): it
takes each ``ToGateway`` REGISTER (put through serialize/parse, so what the registration sends is
proven to be valid SIP), answers it as a digest registrar would (RFC 3261 §10.3, §22) and hands the
answer back by Call-ID, as the node's dispatcher does with what a link reads.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from functools import partial

import pytest
import trio
import trio.testing

from switchd import otp
from switchd.otp import NoProcess, terminate_child, whereis, which_children
from switchd.sip import (
    DigestAlgorithm,
    Request,
    Response,
    TimerConfig,
    digest_credentials,
    ha1,
    make_response,
    parse_credentials,
    parse_message,
    serialize,
    verify_response,
)
from switchd.switch import (
    Gateway,
    GatewayFailed,
    Inbound,
    ToGateway,
    Transport,
    TrunkRegistration,
    TrunkReport,
    TrunkSettings,
    TrunkStatus,
    b_leg_key,
    gateway_name,
    registrations_spec,
    trunk_name,
    trunk_status,
    update_registrations,
)

USER, PASSWORD, REALM = "4420790001", "s3cr#t-trunk-pass", "carrier.example"
GATEWAY = Gateway(name="carrier", host="sip.carrier.example", port=5060,
                  registration=TrunkRegistration(username=USER, password=PASSWORD, expires=600))
SETTINGS = TrunkSettings(local_address="192.0.2.10:5060", timers=TimerConfig(), retry_min=30.0, retry_max=120.0)
TIMER_F = 64 * 0.5
PATIENCE = 7200.0  # virtual seconds a test waits for a REGISTER before failing instead of hanging


@dataclass
class Registrar:
    """A trunk's digest registrar; change its fields between steps to change how it answers.

    ``password``: what it checks credentials against; ``status``: answer 401 (or 407) to challenge;
    ``algorithms``: the challenges it offers, in order (names as written in ``algorithm=``);
    ``granted``: the expires it grants our Contact; ``min_expires``: shorter gets 423;
    ``stale``: how many more correct credentials it calls stale; ``silent``: answer nothing;
    ``unreachable``: tell the sender the gateway cannot be reached (GatewayFailed).
    """

    password: str = PASSWORD
    status: int = 401
    algorithms: tuple[str, ...] = ("MD5",)
    granted: int = 600
    min_expires: int = 0
    stale: int = 0
    silent: bool = False
    unreachable: bool = False
    seen: list[tuple[float, Request]] = field(default_factory=list)
    nonces: int = 0
    _send: trio.MemorySendChannel[tuple[float, Request]] | None = None
    _receive: trio.MemoryReceiveChannel[tuple[float, Request]] | None = None

    def __post_init__(self) -> None:
        self._send, self._receive = trio.open_memory_channel[tuple[float, Request]](math.inf)

    async def next(self) -> tuple[float, Request]:
        """The next REGISTER it got, with the virtual time it got it at."""
        assert self._receive is not None
        with trio.fail_after(PATIENCE):
            return await self._receive.receive()

    async def run(self) -> None:
        while True:
            msg = await otp.receive()
            assert isinstance(msg, ToGateway), msg
            request = parse_message(serialize(msg.message))
            assert isinstance(request, Request)
            now = trio.current_time()
            self.seen.append((now, request))
            assert self._send is not None
            self._send.send_nowait((now, request))
            if self.unreachable:
                otp.send(msg.reply_to, GatewayFailed("carrier", request.call_id, "connection refused"))
                continue
            if self.silent:
                continue
            response = parse_message(serialize(self.answer(request)))
            otp.dispatch(b_leg_key(request.call_id), Inbound(response, otp.self_pid(), now))

    def answer(self, request: Request) -> Response:
        header = "Authorization" if self.status == 401 else "Proxy-Authorization"
        values = request.headers.get_all(header)
        if not values:
            return self.challenge(request)
        credentials = digest_credentials(parse_credentials(values[0], header), header)
        good = (credentials.username == USER and credentials.realm == REALM and credentials.uri == str(request.uri)
                and verify_response(credentials, ha1(credentials.algorithm, USER, REALM, self.password),
                                    "REGISTER"))
        if not good:
            return self.challenge(request)
        if self.stale:
            self.stale -= 1
            return self.challenge(request, stale=True)
        expires = int(request.headers.get("Expires") or "3600")
        if expires and expires < self.min_expires:
            return make_response(request, 423, to_tag="reg", headers=[("Min-Expires", str(self.min_expires))])
        if expires == 0:
            return make_response(request, 200, to_tag="reg")
        contact = request.headers.get("Contact")
        return make_response(request, 200, to_tag="reg", headers=[("Contact", f"{contact};expires={self.granted}")])

    def challenge(self, request: Request, *, stale: bool = False) -> Response:
        self.nonces += 1
        name = "WWW-Authenticate" if self.status == 401 else "Proxy-Authenticate"
        flag = ", stale=true" if stale else ""
        headers = [(name, f'Digest realm="{REALM}", nonce="n{self.nonces}", algorithm={algorithm}, qop="auth"{flag}')
                   for algorithm in self.algorithms]
        return make_response(request, self.status, to_tag="reg", headers=headers)


@asynccontextmanager
async def trunk(registrar: Registrar | None, settings: TrunkSettings = SETTINGS,
                gateway: Gateway = GATEWAY) -> AsyncIterator[None]:
    """The registrar as the gateway's link (None: no link at all), and the registrations supervisor."""
    async with trio.open_nursery() as nursery:
        if registrar is not None:
            await nursery.start(partial(otp.Process.start_link, registrar.run, name=gateway_name("carrier")))
        await nursery.start(registrations_spec([gateway], settings).start)
        yield
        nursery.cancel_scope.cancel()


def authorization_of(request: Request, header: str = "Authorization") -> dict[str, str | None]:
    [value] = request.headers.get_all(header)
    credentials = parse_credentials(value, header)
    return {name: credentials.param(name) for name in ("username", "realm", "nonce", "uri", "algorithm", "nc")}


async def registered_at(registrar: Registrar, when: float) -> None:
    """The two REGISTERs of one registration: unauthenticated, then with credentials, both at `when`."""
    for _ in range(2):
        at, _request = await registrar.next()
        assert at == when


# --- registering and refreshing --------------------------------------------------------------------


async def test_it_registers_with_digest_after_a_401_and_refreshes_at_90_percent_of_the_granted_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    registrar = Registrar(granted=300)
    async with trunk(registrar):
        at, first = await registrar.next()
        assert at == 0 and first.headers.get("Authorization") is None
        assert str(first.uri) == "sip:sip.carrier.example" and first.headers.get("Expires") == "600"
        assert str(first.to.uri) == str(first.from_.uri) == f"sip:{USER}@sip.carrier.example"
        assert first.headers.get("Contact") == f"<sip:{USER}@192.0.2.10:5060;transport=tcp>"
        at, second = await registrar.next()
        assert at == 0 and authorization_of(second) == {
            "username": USER, "realm": REALM, "nonce": "n1", "uri": "sip:sip.carrier.example", "algorithm": "MD5",
            "nc": "00000001"}
        await trio.testing.wait_all_tasks_blocked()
        assert await trunk_status("carrier") == TrunkReport(TrunkStatus.REGISTERED, 300, "", 0, 1)

        at, refresh = await registrar.next()
        assert at == pytest.approx(270.0)  # 90 % of the 300 s granted
        assert refresh.call_id == first.call_id and refresh.headers.get("Authorization") is None
        assert [r.cseq.seq for _, r in registrar.seen] == [1, 2, 3]
        await registrar.next()
        at, _ = await registrar.next()
        assert at == pytest.approx(540.0)
        assert (await trunk_status("carrier")).registrations == 2


async def test_a_407_is_answered_with_proxy_authorization(autojump_clock: trio.testing.MockClock) -> None:
    registrar = Registrar(status=407)
    async with trunk(registrar):
        await registrar.next()
        _, second = await registrar.next()
        assert authorization_of(second, "Proxy-Authorization")["nonce"] == "n1"
        assert second.headers.get("Authorization") is None
        await trio.testing.wait_all_tasks_blocked()
        assert (await trunk_status("carrier")).status is TrunkStatus.REGISTERED


async def test_the_first_challenge_it_can_answer_is_taken_in_the_trunks_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    registrar = Registrar(algorithms=("SHA-512-256", "SHA-256", "MD5"))
    async with trunk(registrar):
        await registrar.next()
        _, second = await registrar.next()
        assert authorization_of(second)["algorithm"] == "SHA-256"
        await trio.testing.wait_all_tasks_blocked()
        assert (await trunk_status("carrier")).status is TrunkStatus.REGISTERED


async def test_a_challenge_it_cannot_answer_is_a_failure_that_names_what_was_offered(
    autojump_clock: trio.testing.MockClock,
) -> None:
    registrar = Registrar(algorithms=("SHA-512-256",))
    async with trunk(registrar):
        await registrar.next()
        await trio.testing.wait_all_tasks_blocked()
        report = await trunk_status("carrier")
        assert report.status is TrunkStatus.FAILED and "Digest SHA-512-256" in report.reason
        assert len(registrar.seen) == 1


async def test_423_makes_it_ask_again_for_the_trunks_min_expires(autojump_clock: trio.testing.MockClock) -> None:
    registrar = Registrar(min_expires=1800, granted=1800)
    async with trunk(registrar):
        for expected in ("600", "600", "1800"):
            _, request = await registrar.next()
            assert request.headers.get("Expires") == expected
        await trio.testing.wait_all_tasks_blocked()
        assert await trunk_status("carrier") == TrunkReport(TrunkStatus.REGISTERED, 1800, "", 0, 1)
        _, refresh = await registrar.next()
        assert refresh.headers.get("Expires") == "1800"  # what the trunk wants is kept


async def test_a_stale_nonce_is_answered_again_but_not_for_ever(autojump_clock: trio.testing.MockClock) -> None:
    registrar = Registrar(stale=1)
    async with trunk(registrar):
        for nonce in (None, "n1", "n2"):
            _, request = await registrar.next()
            assert (None if nonce is None else authorization_of(request)["nonce"]) == nonce
        await trio.testing.wait_all_tasks_blocked()
        assert (await trunk_status("carrier")).status is TrunkStatus.REGISTERED

    endless = Registrar(stale=100)
    async with trunk(endless):
        await trio.testing.wait_all_tasks_blocked()
        report = await trunk_status("carrier")
        assert report.status is TrunkStatus.FAILED and "stale" in report.reason
        assert len(endless.seen) == 2 + 3  # the first, the answer, three answers to stale nonces


# --- failures and back-off -------------------------------------------------------------------------


async def test_refused_credentials_back_off_doubling_to_retry_max_and_a_success_resets_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    registrar = Registrar(password="not what switchd has", granted=600)
    async with trunk(registrar):
        attempts: list[float] = []
        for _ in range(5):
            at, _ = await registrar.next()  # unauthenticated
            await registrar.next()  # with the (refused) credentials
            attempts.append(at)
        assert attempts == [0, 30, 90, 210, 330]  # 30, 60, 120, then retry_max 120
        report = await trunk_status("carrier")
        assert report.status is TrunkStatus.FAILED and report.failures == 5
        assert report.reason == "401 Unauthorized: credentials refused"

        registrar.password = PASSWORD
        await registered_at(registrar, 450)
        await trio.testing.wait_all_tasks_blocked()
        assert await trunk_status("carrier") == TrunkReport(TrunkStatus.REGISTERED, 600, "", 0, 1)

        registrar.password = "changed again"
        await registered_at(registrar, 450 + 540)  # the refresh, refused
        at, _ = await registrar.next()
        assert at == 450 + 540 + 30  # back to retry_min after the success


async def test_no_answer_within_timer_f_is_a_failure_and_is_retried(autojump_clock: trio.testing.MockClock) -> None:
    registrar = Registrar(silent=True)
    async with trunk(registrar):
        await registrar.next()
        at, retry = await registrar.next()
        assert at == TIMER_F + 30
        assert retry.cseq.seq == 2
        report = await trunk_status("carrier")
        assert (report.status, report.reason) == (TrunkStatus.FAILED, "no answer within Timer F")


async def test_an_unreachable_gateway_is_a_failure_and_is_retried(autojump_clock: trio.testing.MockClock) -> None:
    registrar = Registrar(unreachable=True)
    async with trunk(registrar):
        await registrar.next()
        await trio.testing.wait_all_tasks_blocked()
        report = await trunk_status("carrier")
        assert (report.status, report.reason) == (TrunkStatus.FAILED, "gateway unreachable: connection refused")
        registrar.unreachable = False
        await registered_at(registrar, 30)


async def test_a_gateway_without_a_link_process_is_a_failure_not_a_crash(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trunk(None):
        await trio.testing.wait_all_tasks_blocked()
        report = await trunk_status("carrier")
        assert (report.status, report.reason) == (TrunkStatus.FAILED, "no link to the gateway")
        await trio.sleep(100)
        assert (await trunk_status("carrier")).failures == 3  # at 0, 30 and 90


async def test_a_trunk_on_udp_is_registered_over_udp_from_the_udp_address_and_retransmitted_on_timer_e(
    autojump_clock: trio.testing.MockClock,
) -> None:
    udp = replace(GATEWAY, transport=Transport.UDP)
    registrar = Registrar(silent=True)
    async with trunk(registrar, replace(SETTINGS, udp_address="192.0.2.10:5062"), udp):
        times = []
        for _ in range(4):
            at, request = await registrar.next()
            times.append(at)
        assert times == [0.0, 0.5, 1.5, 3.5]  # Timer E: T1, doubling (RFC 3261 §17.1.2.2)
        assert str(request.top_via).startswith("SIP/2.0/UDP 192.0.2.10:5062;")
        assert request.headers.get("Contact") == f"<sip:{USER}@192.0.2.10:5062;transport=udp>"
        assert {r.cseq.seq for _, r in registrar.seen} == {1}  # one transaction, sent again
        registrar.silent = False
        await registered_at(registrar, 7.5)  # the next retransmission is answered: 401, then 200
        await trio.testing.wait_all_tasks_blocked()
        assert (await trunk_status("carrier")).granted == 600
    over_tcp = Registrar()  # without a UDP socket the same trunk registers over TCP
    async with trunk(over_tcp, SETTINGS, udp):
        _, request = await over_tcp.next()
        assert request.top_via.transport == "TCP"


# --- shutting down ---------------------------------------------------------------------------------


async def test_shutdown_unregisters_with_expires_0_and_answers_its_challenge(
    autojump_clock: trio.testing.MockClock,
) -> None:
    registrar = Registrar()
    async with trunk(registrar):
        await registered_at(registrar, 0)
        await trio.testing.wait_all_tasks_blocked()
        await terminate_child("registrations", trunk_name("carrier"))
        _, unregister = await registrar.next()
        assert unregister.headers.get("Expires") == "0" and unregister.cseq.seq == 3
        assert authorization_of(unregister)["nonce"] == "n1" and authorization_of(unregister)["nc"] == "00000002"
        assert unregister.headers.get("Contact") == f"<sip:{USER}@192.0.2.10:5060;transport=tcp>"
        assert whereis(trunk_name("carrier")) is None
        assert len(registrar.seen) == 3  # taken at once: the nonce was still good

    renewed = Registrar()
    async with trunk(renewed):
        await registered_at(renewed, 0)
        await trio.testing.wait_all_tasks_blocked()
        renewed.stale = 1  # the nonce of the last challenge has expired meanwhile: challenged again
        await terminate_child("registrations", trunk_name("carrier"))
        expires = [r.headers.get("Expires") for _, r in renewed.seen]
        assert expires == ["600", "600", "0", "0"]
        assert authorization_of(renewed.seen[-1][1])["nonce"] == "n2"


async def test_the_unregister_waits_no_longer_than_unregister_timeout(autojump_clock: trio.testing.MockClock) -> None:
    registrar = Registrar()
    async with trunk(registrar, replace(SETTINGS, unregister_timeout=1.5)):
        await registered_at(registrar, 0)
        await trio.testing.wait_all_tasks_blocked()
        registrar.silent = True
        start = trio.current_time()
        await terminate_child("registrations", trunk_name("carrier"))
        assert trio.current_time() - start == pytest.approx(1.5)
        assert registrar.seen[-1][1].headers.get("Expires") == "0"


async def test_a_registration_that_never_succeeded_sends_no_unregister(
    autojump_clock: trio.testing.MockClock,
) -> None:
    registrar = Registrar(password="wrong")
    async with trunk(registrar):
        await registrar.next()
        await registrar.next()
        await trio.testing.wait_all_tasks_blocked()
        await terminate_child("registrations", trunk_name("carrier"))
        await trio.testing.wait_all_tasks_blocked()
        assert len(registrar.seen) == 2


# --- secrets ---------------------------------------------------------------------------------------


async def test_the_password_and_its_digests_are_in_no_log_line_nor_status(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    registrar = Registrar(password="wrong")
    async with trunk(registrar):
        await registrar.next()
        await registrar.next()  # refused: the failure is logged
        registrar.password = PASSWORD
        await registered_at(registrar, 30)
        await trio.testing.wait_all_tasks_blocked()
        statuses = [info.status for info in otp.processes()]
        await terminate_child("registrations", trunk_name("carrier"))
    secrets = [PASSWORD, *(ha1(algorithm, USER, REALM, PASSWORD) for algorithm in DigestAlgorithm)]
    logged = [record.getMessage() + repr(record.__dict__) for record in caplog.records]
    assert any("registered with" in line for line in logged) and any("failed" in line for line in logged)
    assert any("unregistered" in line for line in logged)
    for secret in secrets:
        assert not [line for line in logged if secret in line]
        assert not [status for status in statuses if secret in status]
    assert PASSWORD not in repr(GATEWAY)


# --- the supervisor --------------------------------------------------------------------------------


async def test_only_gateways_with_a_registration_get_a_process(autojump_clock: trio.testing.MockClock) -> None:
    plain = Gateway(name="plain", host="192.0.2.7", port=5060)
    async with trio.open_nursery() as nursery:
        await nursery.start(registrations_spec([plain, GATEWAY], SETTINGS).start)
        assert [c.id for c in await which_children("registrations")] == ["trunk:carrier"]
        nursery.cancel_scope.cancel()


async def test_a_reload_renews_changed_registrations_and_stops_removed_ones(
    autojump_clock: trio.testing.MockClock,
) -> None:
    plain = Gateway(name="plain", host="192.0.2.7", port=5060)
    async with trunk(Registrar()):
        before = whereis(trunk_name("carrier"))
        assert await update_registrations([GATEWAY], [replace(GATEWAY, rate_plan="cheap")], SETTINGS) == []
        assert whereis(trunk_name("carrier")) == before

        moved = replace(GATEWAY, port=5080)
        assert await update_registrations([GATEWAY], [moved], SETTINGS) == ["carrier: registration renewed"]
        after = whereis(trunk_name("carrier"))
        assert after is not None and after != before

        new = replace(plain, registration=TrunkRegistration(username="u2", password="p2"))
        assert await update_registrations([moved, plain], [replace(moved, registration=None), new], SETTINGS) == [
            "carrier: registration stopped", "plain: registering with 192.0.2.7:5060"]
        assert [c.id for c in await which_children("registrations")] == ["trunk:plain"]


async def test_a_status_request_for_a_gateway_without_registration_raises_noprocess() -> None:
    with pytest.raises(NoProcess):
        await trunk_status("nobody")


"""Hot code swap of the routing policy under real calls: CallSessions place B-legs while the policy flips.

The Router's policy is swapped 100 times with `swap_policy` while CallSessions (under the real
calls supervisor, routed by the real Router) place calls through whole answered-call cycles. The
route table puts three gateways in opposite orders under the two policies:

    priority_weight  gw1, gw2, gw3   (by priority)
    least_cost       gw3, gw2, gw1   (by the rate plan each gateway bills through)

so the gateway that gets a call's first B-leg INVITE names the policy that routed it, and the
gateway a failed-over call goes to next tells its own route list (always gw2) from the one a fresh
lookup would give it after a swap (gw1 or gw3).
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from itertools import count

import trio
from trio.testing import MockClock

from switchd.billing import CdrAnswer, CdrClose, CdrOpen, Disposition
from switchd.otp import Pid
from switchd.sip import Method, Request
from switchd.switch import Gateway, Route, RouteTable, Target, costs_from_rates, swap_policy, swap_table

from ._call_harness import ANSWER_SDP, Bench, Link, Phone, Wire, bench

GATEWAYS = ("gw1", "gw2", "gw3")
PLANS = {"gw1": "premium", "gw2": "standard", "gw3": "budget"}
RATES = {"premium": {"44": Decimal("0.090")}, "standard": {"44": Decimal("0.050")},
         "budget": {"44": Decimal("0.010")}}
TABLE = RouteTable([Route(id="uk", prefix="44", targets=tuple(
    Target(gateway=Gateway(name=name, host="127.0.0.1", port=5071 + i, rate_plan=PLANS[name]), priority=i + 1)
    for i, name in enumerate(GATEWAYS)))])
ORDER = {"priority_weight": ["gw1", "gw2", "gw3"], "least_cost": ["gw3", "gw2", "gw1"]}
POLICIES = ["least_cost", "priority_weight"] * 50  # swap k (from 1) installs POLICIES[k - 1]
RING = 1.0  # virtual seconds from the callee's 180 to its 200
TALK = 4.0  # virtual seconds from the ACK to the caller's BYE
CALLERS = 3


def policy_after(swaps: int) -> str:
    """The policy the Router runs once `swaps` swaps have been done (it starts as priority_weight)."""
    return POLICIES[swaps - 1] if swaps else "priority_weight"


class Exchange:
    """Sorts what the gateway links receive by call: a B-leg INVITE by its number, the rest by B call id.

    Every call dials a number of its own, so many calls can share the links at once; each call's
    driver reads `(gateway, message)` pairs from its own Wire.
    """

    def __init__(self) -> None:
        self._calls: dict[str, Wire] = {}
        self._legs: dict[str, str] = {}  # B-leg call id -> dialled number

    def open(self, number: str) -> Wire:
        self._calls[number] = Wire()
        return self._calls[number]

    async def run(self, link: Link) -> None:
        while True:
            message = await link.out.next()
            if isinstance(message, Request) and message.method == Method.INVITE:
                self._legs.setdefault(message.call_id, message.uri.user or "")
            self._calls[self._legs[message.call_id]].put((link.name, message))


async def next_request(wire: Wire, method: Method) -> tuple[str, Request]:
    gateway, message = await wire.next()
    assert isinstance(message, Request) and message.method == method, f"expected {method}, got {message}"
    return gateway, message


async def answer_and_hang_up(b: Bench, phone: Phone, gw_wire: Wire, gateway: str, invite: Request) -> None:
    """The callee at `gateway` rings, answers after RING; the caller talks for TALK and hangs up."""
    link = b.link(gateway)
    link.respond(invite, 180)
    await phone.expect(180)
    await trio.sleep(RING)
    link.respond(invite, 200, body=ANSWER_SDP)
    ok = await phone.expect(200)
    assert ok.body == ANSWER_SDP
    phone.ack(ok)
    at, ack = await next_request(gw_wire, Method.ACK)
    assert at == gateway and ack.call_id == invite.call_id and ack.cseq.seq == invite.cseq.seq
    await trio.sleep(TALK)
    phone.bye()
    await phone.expect(200)
    at, bye = await next_request(gw_wire, Method.BYE)
    assert at == gateway and bye.call_id == invite.call_id
    link.respond(bye, 200)


async def test_calls_placed_while_the_policy_flips_100_times_all_complete_each_routed_by_the_policy_of_its_time(
        autojump_clock: MockClock) -> None:
    sent = done = 0  # swaps sent to the Router / swaps it has completed
    swapped = [trio.Event() for _ in range(len(POLICIES) + 1)]  # swapped[k]: swap k has completed
    seen = [trio.Event() for _ in range(len(POLICIES) + 1)]  # seen[k]: a caller's call was routed after swap k
    straddling = [trio.Event() for _ in range(len(POLICIES) + 1)]  # straddling[k]: a call waits to cross swap k
    swapped[0].set()
    stop = False
    numbers = count(1)
    exchange = Exchange()
    placed: list[str] = []
    checked = crossed = failed_over = in_flight = 0  # in_flight: calls routed and not yet ended

    async def place(b: Bench) -> tuple[Phone, Pid, Wire, int]:
        number = f"44{next(numbers):06d}"
        window = done  # before the INVITE: the lookup can only come after swap `window` completed
        gw_wire = exchange.open(number)
        phone, pid = await b.call(number)
        placed.append(phone.call_id)
        await phone.expect(100)
        return phone, pid, gw_wire, window

    async def finish(b: Bench, phone: Phone, pid: Pid, gateway: str, attempts: int) -> None:
        nonlocal in_flight
        assert await b.exited(pid) == "normal"
        in_flight -= 1
        assert phone.wire.empty()
        closed = b.close(phone.call_id)
        assert (closed.disposition, closed.sip_code, closed.gateway, closed.b_attempts) == (
            Disposition.ANSWERED, 200, gateway, attempts)
        [answered] = b.steps(phone.call_id, CdrAnswer)
        assert closed.end_at - answered.at == timedelta(seconds=TALK)

    async def caller(b: Bench, index: int) -> None:
        nonlocal checked, crossed, in_flight
        await trio.sleep(index * 0.25)  # staggered, so calls ring and talk across the swaps
        while not stop:
            phone, pid, gw_wire, window = await place(b)
            gateway, invite = await next_request(gw_wire, Method.INVITE)
            in_flight += 1
            if sent == window:  # no swap was sent while this call was routed: exactly policy `window`'s
                assert gateway == ORDER[policy_after(window)][0], f"after swap {window}"
                checked += 1
                seen[window].set()
            else:  # routed by one side or the other of the swap it raced
                assert gateway in ("gw1", "gw3")
                crossed += 1
            await answer_and_hang_up(b, phone, gw_wire, gateway, invite)
            await finish(b, phone, pid, gateway, attempts=1)
            [opened] = b.steps(phone.call_id, CdrOpen)
            [answered] = b.steps(phone.call_id, CdrAnswer)
            assert answered.at - opened.setup_at == timedelta(seconds=RING)

    async def straddler(b: Bench) -> None:
        """For every swap k: a call routed before it whose first gateway fails right after it."""
        nonlocal failed_over, in_flight
        for k in range(1, len(POLICIES) + 1):
            phone, pid, gw_wire, window = await place(b)
            assert window == k - 1
            old, new = policy_after(k - 1), policy_after(k)
            first_gw, first = await next_request(gw_wire, Method.INVITE)
            in_flight += 1
            assert first_gw == ORDER[old][0] and sent == k - 1
            straddling[k].set()
            await swapped[k].wait()
            if k % 2:
                b.link(first_gw).respond(first, 503)
                # the client transaction ACKs the 503; that and the next INVITE come by different links
                two = {message.method: (gateway, message) for gateway, message in
                       [await gw_wire.next(), await gw_wire.next()]}
                (ack_gw, ack), (second_gw, second) = two[Method.ACK], two[Method.INVITE]
                assert (ack_gw, ack.call_id) == (first_gw, first.call_id)
            else:
                b.link(first_gw).fail(first)  # the gateway's connection is refused
                second_gw, second = await next_request(gw_wire, Method.INVITE)
            fresh = next(gw for gw in ORDER[new] if gw != first_gw)  # what a lookup now would try instead
            assert second_gw == ORDER[old][1] != fresh, f"failed over across swap {k} to {second_gw}"
            assert second.uri.user == first.uri.user and second.call_id != first.call_id
            await answer_and_hang_up(b, phone, gw_wire, second_gw, second)
            await finish(b, phone, pid, second_gw, attempts=2)
            failed_over += 1

    async with bench(gateways=GATEWAYS) as b, trio.open_nursery() as links:
        for name in GATEWAYS:
            links.start_soon(exchange.run, b.link(name))
        await swap_table(TABLE, costs=costs_from_rates(RATES))
        async with trio.open_nursery() as calls:
            for index in range(CALLERS):
                calls.start_soon(caller, b, index)
            calls.start_soon(straddler, b)
            await seen[0].wait()
            for k, policy in enumerate(POLICIES, start=1):
                await straddling[k].wait()
                sent += 1
                assert trio.current_time() == (k - 1) * (RING + TALK)  # no timer fired: no Timer B, no retry
                assert in_flight >= (2 if k == 1 else 3)  # the straddling call and callers ringing or talking
                await swap_policy(policy)
                done += 1
                swapped[k].set()
                await seen[k].wait()
            stop = True  # the callers finish the calls they have in flight, then stop
        links.cancel_scope.cancel()

    closes = [s for s in b.cdrs if isinstance(s, CdrClose)]
    assert len(closes) == len(placed) and {c.call_id for c in closes} == set(placed)
    assert all(c.disposition is Disposition.ANSWERED for c in closes)  # 0 failed calls
    assert (sent, done, failed_over) == (100, 100, 100)
    assert checked >= 101 and len(placed) == checked + crossed + failed_over

"""Hold as an SDP offer says it (RFC 3264 §8.4), and the clock of a call's time on hold."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from switchd.switch._hold import HoldClock, holds
from switchd.switch._leg_state import LegRole

SESSION = "v=0\r\no=a 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
AUDIO = "m=audio 4000 RTP/AVP 0\r\n"
VIDEO = "m=video 4002 RTP/AVP 96\r\n"


@pytest.mark.parametrize(("sdp", "held"), [
    (SESSION + AUDIO, False),  # sendrecv by default
    (SESSION + AUDIO + "a=sendonly\r\n", True),
    (SESSION + AUDIO + "a=inactive\r\n", True),
    (SESSION + AUDIO + "a=recvonly\r\n", False),  # the answer to a hold, not a hold
    (SESSION + AUDIO + "a=sendrecv\r\n", False),
    (SESSION + "a=sendonly\r\n" + AUDIO, True),  # the session's direction applies to its streams
    (SESSION + "a=sendonly\r\n" + AUDIO + "a=sendrecv\r\n", False),  # a stream's own line wins
    (SESSION.replace("10.0.0.1\r\nt", "0.0.0.0\r\nt") + AUDIO, True),  # RFC 2543 hold
    (SESSION + AUDIO + "c=IN IP4 0.0.0.0\r\n", True),
    (SESSION + AUDIO + "a=sendonly\r\n" + VIDEO, False),  # the video still flows
    (SESSION + AUDIO + "a=sendonly\r\n" + VIDEO.replace("4002", "0"), True),  # a disabled stream counts not
    (SESSION.replace("\r\n", "\n") + AUDIO + "a=sendonly\n", True),  # bare LF line ends
    (SESSION + "a=inactive\r\n", True),  # no stream at all: the session level says it
])
def test_an_offer_holds_when_every_active_stream_is_sendonly_inactive_or_at_0_0_0_0(sdp: str, held: bool) -> None:
    assert holds(sdp.encode()) is held


@pytest.mark.parametrize("body", [b"", b"Signal=5\r\n", b"\xff\xfe", b"<xml/>"])
def test_a_body_that_is_not_sdp_says_nothing_about_hold(body: bytes) -> None:
    assert holds(body) is None


@given(st.binary())
def test_any_bytes_are_read_without_an_error(body: bytes) -> None:
    assert holds(body) in (True, False, None)


@given(st.lists(st.sampled_from(["m=audio 0", "m=audio", "m=", "c=IN", "c=IN IP4", "a=sendonly", "a=", "=", "x"])))
def test_truncated_sdp_lines_are_read_without_an_error(lines: list[str]) -> None:
    assert holds("\r\n".join(["v=0", *lines]).encode()) in (True, False)


def test_the_hold_clock_counts_overlapping_holds_once_and_ignores_a_resume_by_who_did_not_hold() -> None:
    clock = HoldClock()
    clock.offer(LegRole.CALLER, True, 10.0)
    clock.offer(LegRole.CALLEE, True, 12.0)  # both on hold
    clock.offer(LegRole.CALLER, False, 15.0)  # the callee still holds it
    assert clock.seconds(16.0) == 6.0
    clock.offer(LegRole.CALLEE, False, 20.0)
    clock.offer(LegRole.CALLER, False, 25.0)  # resuming what is not held changes nothing
    clock.offer(LegRole.CALLEE, True, 30.0)
    clock.offer(LegRole.CALLEE, True, 31.0)  # a second hold offer does not restart it
    assert clock.seconds(40.0) == 10.0 + 10.0

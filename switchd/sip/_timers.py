"""The transaction timers of RFC 3261 §17 (Table 4) and RFC 6026, with their defaults.

Only T1, T2 and T4 are set; every other timer derives from them as RFC 3261 Table 4 says. The
values below are those of an unreliable transport (UDP). On a reliable one (TCP) a transaction
never runs the retransmission timers (A, E, G) and uses zero for the timers that only absorb
network-duplicated messages (D, I, J, K): the transaction decides which, from its `reliable` flag,
so one TimerConfig serves both transports.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class TimerConfig:
    """Timer values in seconds; the derived timers are read-only properties.

    t1: round-trip time estimate (RFC 3261 §17.1.1.1), default 0.5.
    t2: the longest interval between retransmissions of a non-INVITE request or an INVITE
        response, default 4.0.
    t4: the longest time a message stays in the network, default 5.0 (Timers I and K on UDP).
    """

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0

    def __post_init__(self) -> None:
        for name in ("t1", "t2", "t4"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"TimerConfig.{name} must be a positive number of seconds, got {value!r}")
        if self.t2 < self.t1:
            raise ValueError(f"TimerConfig.t2 ({self.t2!r}) must not be shorter than t1 ({self.t1!r})")

    @property
    def timer_a(self) -> float:
        """INVITE client, UDP: the first retransmission interval of the INVITE, T1 (doubling each time)."""
        return self.t1

    @property
    def timer_b(self) -> float:
        """INVITE client transaction timeout: 64*T1."""
        return 64 * self.t1

    @property
    def timer_d(self) -> float:
        """INVITE client: wait in Completed for response retransmissions: 32 s on UDP (0 on TCP)."""
        return 32.0

    @property
    def timer_e(self) -> float:
        """Non-INVITE client, UDP: the first retransmission interval, T1 (doubling up to T2)."""
        return self.t1

    @property
    def timer_f(self) -> float:
        """Non-INVITE client transaction timeout: 64*T1."""
        return 64 * self.t1

    @property
    def timer_g(self) -> float:
        """INVITE server, UDP: the first retransmission interval of a non-2xx final, T1 (doubling up to T2)."""
        return self.t1

    @property
    def timer_h(self) -> float:
        """INVITE server: wait for the ACK to a non-2xx final response: 64*T1."""
        return 64 * self.t1

    @property
    def timer_i(self) -> float:
        """INVITE server: wait in Confirmed for ACK retransmissions: T4 on UDP (0 on TCP)."""
        return self.t4

    @property
    def timer_j(self) -> float:
        """Non-INVITE server: wait in Completed for request retransmissions: 64*T1 on UDP (0 on TCP)."""
        return 64 * self.t1

    @property
    def timer_k(self) -> float:
        """Non-INVITE client: wait in Completed for response retransmissions: T4 on UDP (0 on TCP)."""
        return self.t4

    @property
    def timer_l(self) -> float:
        """INVITE server, UDP: wait in Accepted (RFC 6026 §8.7) for INVITE retransmissions after a 2xx: 64*T1."""
        return 64 * self.t1

    @property
    def ack_timeout(self) -> float:
        """UAS core: give up retransmitting a 2xx that gets no ACK after 64*T1 (§13.3.1.4)."""
        return 64 * self.t1


DEFAULT_TIMERS = TimerConfig()

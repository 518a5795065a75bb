"""The application tree with a UDP listen address: its socket runs under "sip" and answers."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import trio

from switchd.app import serve
from switchd.config import Address
from switchd.otp import stop, which_children
from switchd.switch import udp_bound, udp_socket_name

from .switch.transport_helpers import request
from .test_app import make_config


async def test_a_udp_listen_address_gets_a_socket_under_sip_that_answers(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    config = dataclasses.replace(config, sip=dataclasses.replace(config.sip, listen_udp=(Address("127.0.0.1", 0),)))
    async with trio.open_nursery() as nursery:
        await nursery.start(serve, config)
        name = udp_socket_name("127.0.0.1:0")
        assert name in [c.id for c in await which_children("sip")]
        host, _, port = (await udp_bound(name)).rpartition(":")
        with trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM) as sock:
            await sock.bind(("127.0.0.1", 0))
            await sock.sendto(request("OPTIONS", "udp-ping"), (host, int(port)))
            with trio.fail_after(10):
                answer, _ = await sock.recvfrom(65_536)
        assert answer.startswith(b"SIP/2.0 200 ") and b"Call-ID: udp-ping" in answer
        await stop("switchd", "shutdown", timeout=30)

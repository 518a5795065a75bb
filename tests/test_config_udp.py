"""The configuration of SIP over UDP: [sip] listen_udp and its limits, a gateway's transport."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from switchd.app import build_app
from switchd.billing import CdrQueue
from switchd.config import Address, ConfigError, load, loads
from switchd.sip import Request, Response
from switchd.switch import Transport, UdpPeer, udp_socket_name, udp_socket_spec

from .test_config import assert_refused

UDP_GATEWAY = """\
[[gateways]]
name = "carrier"
address = "192.0.2.10:5060"
transport = "udp"
"""


def test_udp_is_off_unless_listen_udp_is_set() -> None:
    cfg = loads("")
    assert cfg.sip.listen_udp == ()
    assert (cfg.sip.udp_max_transactions, cfg.sip.udp_max_request_size) == (10_000, 1300)
    assert cfg.call_settings(CdrQueue()).udp_address is None


def test_listen_udp_takes_one_address_or_a_list() -> None:
    assert loads('[sip]\nlisten_udp = "127.0.0.1:5060"\n').sip.listen_udp == (Address("127.0.0.1", 5060),)
    both = loads('[sip]\nlisten_udp = ["127.0.0.1:5060", "[::1]:5062"]\n').sip.listen_udp
    assert both == (Address("127.0.0.1", 5060), Address("::1", 5062))


@pytest.mark.parametrize(("text", "line", "key", "reason"), [
    ("[sip]\nlisten_udp = 5060\n", 2, "sip.listen_udp", "expected an address 'host:port'"),
    ('[sip]\nlisten_udp = ["127.0.0.1:5060", "nowhere"]\n', 2, "sip.listen_udp[1]", "'nowhere' is not host:port"),
    ("[sip]\nudp_max_transactions = 0\n", 2, "sip.udp_max_transactions", "must be >= 1"),
    ("[sip]\nudp_max_request_size = 100\n", 2, "sip.udp_max_request_size", "must be >= 200"),
])
def test_a_bad_udp_setting_is_refused_at_its_key(text: str, line: int, key: str, reason: str) -> None:
    assert_refused(text, line=line, key=key, reason=reason)


def test_a_gateway_names_its_transport_tcp_by_default() -> None:
    cfg = loads('[sip]\nlisten_udp = "127.0.0.1:5060"\n' + UDP_GATEWAY + textwrap.dedent("""
        [[gateways]]
        name = "pbx"
        address = "192.0.2.20:5060"

        [[gateways]]
        name = "udp-only"
        address = "192.0.2.30:5060"
        transport = "udp"
        tcp_fallback = false
        """))
    carrier, pbx, udp_only = cfg.routing.gateways
    assert (carrier.transport, carrier.tcp_fallback) == (Transport.UDP, True)
    assert pbx.transport is Transport.TCP
    assert (udp_only.transport, udp_only.tcp_fallback) == (Transport.UDP, False)


def test_a_udp_gateway_without_a_udp_address_to_send_from_is_refused_at_its_transport() -> None:
    assert_refused(UDP_GATEWAY, line=4, key="gateways[0].transport", reason="needs sip.listen_udp")


def test_a_udp_gateway_in_a_routes_file_is_checked_against_listen_udp_too(tmp_path: Path) -> None:
    (tmp_path / "routes.toml").write_text(UDP_GATEWAY + '\n[[routes]]\nprefix = ""\ngateways = ["carrier"]\n')
    (tmp_path / "switchd.toml").write_text('[routing]\nroutes_file = "routes.toml"\n')
    with pytest.raises(ConfigError, match=r"routes.toml:4: gateways\[0\].transport: .*needs sip.listen_udp"):
        load(tmp_path / "switchd.toml")


@pytest.mark.parametrize("text", ['transport = "sctp"', 'transport = "UDP"', "tcp_fallback = 1"])
def test_a_bad_transport_key_is_refused(text: str) -> None:
    assert_refused(f'[sip]\nlisten_udp = "127.0.0.1:5060"\n[[gateways]]\nname = "g"\naddress = "1.2.3.4:5"\n{text}\n',
                   line=6, key=f"gateways[0].{text.split()[0]}", reason="")


def test_the_node_sends_udp_b_legs_from_its_first_udp_address_with_its_limits() -> None:
    cfg = loads('[sip]\nlisten_udp = ["127.0.0.1:5062", "127.0.0.1:5064"]\nudp_max_request_size = 900\n'
                "udp_max_transactions = 500\nmax_vias = 10\n")
    settings = cfg.call_settings(CdrQueue())
    assert (settings.udp_address, settings.udp_max_request_size) == ("127.0.0.1:5062", 900)
    udp = cfg.sip.udp_settings(cfg.timers.sip_timers())
    assert (udp.max_transactions, udp.max_vias, udp.timers.t1) == (500, 10, 0.5)
    app = build_app(cfg)
    assert app.config.link_settings.udp_socket == udp_socket_name("127.0.0.1:5062")


async def _nowhere(message: Request | Response, peer: UdpPeer, received_at: float, source: str) -> None:
    pass


def test_an_ipv6_udp_address_names_its_socket_as_the_gateway_links_look_it_up() -> None:
    cfg = loads('[sip]\nlisten_udp = "[::1]:5062"\n')
    app = build_app(cfg)
    spec = udp_socket_spec("::1", 5062, cfg.sip.udp_settings(cfg.timers.sip_timers()), _nowhere)
    assert app.config.link_settings.udp_socket == spec.id == udp_socket_name("[::1]:5062")
    assert cfg.call_settings(CdrQueue()).udp_address == "[::1]:5062"

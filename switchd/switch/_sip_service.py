"""The "sip" supervisor: connections, UDP sockets, gateway links and the listener, and their reload.

```
sip                 Supervisor, one_for_one
├── connections     DynamicSupervisor: one SipConnection per accepted TCP connection (TEMPORARY)
├── udp:<address>   one UdpSocket per UDP listen address (PERMANENT)
├── gateways        Supervisor, one_for_one: one GatewayLink per gateway, "gateway:<name>" (PERMANENT)
├── contacts        DynamicSupervisor: a GatewayLink per registered contact being called (TRANSIENT:
│                   it exits once unused; started by the registrar)
└── listener        the TCP listener (PERMANENT)
```

Why one_for_one at both levels: the children share no state. The listener finds "connections"
by name at every accept; a session finds its A-leg connection by pid and a gateway by name. So a
crashed listener is restarted alone (the connections it accepted, and the calls on them, go on);
a crashed gateway link is restarted alone and only the sessions using it hear `GatewayFailed`;
a crashed connection is TEMPORARY (its peer reconnects; restarting a process whose socket is
gone would make no sense) and never counts toward restart intensity. A UDP socket is PERMANENT
and restarted alone: it binds the same address again, and its peers' next datagrams find it (the
calls whose callers it carried saw it exit, as a TCP caller's connection closing, and ended).
Start order puts the listener last, so the first INVITE finds every gateway link already
registered (UDP sockets take calls from their start: their first INVITE waits for nothing a
gateway link needs until it routes, by which time the links run); shutdown, in reverse, stops
accepting first and closes the UDP sockets after the gateway links.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from functools import partial

from switchd.otp import (
    ChildSpec,
    ChildType,
    DynamicSupervisor,
    NoProcess,
    Restart,
    Strategy,
    Supervisor,
    SupervisorFlags,
    delete_child,
    start_child,
    terminate_child,
    whereis,
)

from ._connections import ConnectionTable
from ._gateway_link import DEFAULT_LINK_SETTINGS, LinkSettings, gateway_link_spec
from ._listener import listener_spec
from ._routing import Gateway
from ._sip_connection import ConnectionSettings, Dispatch
from ._udp_socket import UdpCounters, UdpDispatch, UdpSettings, udp_socket_spec
from ._wire import gateway_name

NAME = "sip"
CONNECTIONS = "connections"
GATEWAYS = "gateways"
CONTACTS = "contacts"


CONTACT_IDLE = 120.0
"""Seconds a link to a registered contact stays up unused (no call on it) before it exits."""


def contact_link_spec(gateway: Gateway, conn_settings: ConnectionSettings, dispatch: Dispatch,
                      link_settings: LinkSettings = DEFAULT_LINK_SETTINGS) -> ChildSpec:
    """The child spec of a link to a registered contact (`gateway`, see `_registrar.contact_gateway`).

    Started under "contacts" by the registrar when a call is about to go there; TRANSIENT, with
    ``idle_exit`` `CONTACT_IDLE`: it exits "normal" once no call has used it for that long (and is
    not restarted then), while a crash restarts it.
    """
    spec = gateway_link_spec(gateway, conn_settings, dispatch, replace(link_settings, idle_exit=CONTACT_IDLE))
    return replace(spec, restart=Restart.TRANSIENT)


def sip_service_spec(host: str, port: int, gateways: Sequence[Gateway], conn_settings: ConnectionSettings,
                     dispatch: Dispatch, link_settings: LinkSettings = DEFAULT_LINK_SETTINGS, *,
                     table: ConnectionTable | None = None, udp: Sequence[tuple[str, int]] = (),
                     udp_dispatch: UdpDispatch | None = None, udp_settings: UdpSettings | None = None,
                     udp_counters: UdpCounters | None = None) -> ChildSpec:
    """The child spec of the "sip" supervisor (registered "sip"), listening on `host`:`port` (TCP).

    `table` is the node's ConnectionTable (connection limits and counts; see `_connections`); it
    outlives restarts of the listener and of "connections". Without one, a table of its own.
    `udp` are the (host, port) to listen on for UDP, one socket process each, handing what they read
    to `udp_dispatch` (the node's `Dispatcher` serves both; required with `udp`), with
    `udp_settings` (default UdpSettings()) and the node's `udp_counters` (default: their own).

    Restart intensity: 10 restarts in 10 s in each supervisor — a gateway flapping or a listener
    hitting a transient error is retried, a crash loop escalates.
    """
    flags = SupervisorFlags(Strategy.ONE_FOR_ONE, max_restarts=10, max_seconds=10.0)
    links = [gateway_link_spec(gw, conn_settings, dispatch, link_settings) for gw in gateways]
    if udp and udp_dispatch is None:
        raise ValueError("sip_service_spec: UDP addresses given without a udp_dispatch")
    udp_settings = udp_settings or UdpSettings()
    udp_counters = udp_counters or UdpCounters()
    children = [
        ChildSpec(id=CONNECTIONS, start=partial(DynamicSupervisor.start_link, name=CONNECTIONS),
                  restart=Restart.PERMANENT, type=ChildType.SUPERVISOR, shutdown=math.inf),
        *(udp_socket_spec(udp_host, udp_port, udp_settings, udp_dispatch, counters=udp_counters)
          for udp_host, udp_port in udp if udp_dispatch is not None),
        ChildSpec(id=GATEWAYS, start=partial(Supervisor.start_link, links, flags, name=GATEWAYS),
                  restart=Restart.PERMANENT, type=ChildType.SUPERVISOR, shutdown=math.inf),
        ChildSpec(id=CONTACTS, start=partial(DynamicSupervisor.start_link, max_restarts=10, max_seconds=10.0,
                                             name=CONTACTS),
                  restart=Restart.PERMANENT, type=ChildType.SUPERVISOR, shutdown=math.inf),
        listener_spec(host, port, conn_settings, dispatch, connections=CONNECTIONS,
                      table=ConnectionTable() if table is None else table),
    ]
    return ChildSpec(id=NAME, start=partial(Supervisor.start_link, children, flags, name=NAME),
                     restart=Restart.PERMANENT, type=ChildType.SUPERVISOR, shutdown=math.inf)


async def update_gateway_links(old: Sequence[Gateway], new: Sequence[Gateway], conn_settings: ConnectionSettings,
                               dispatch: Dispatch, link_settings: LinkSettings = DEFAULT_LINK_SETTINGS) -> list[str]:
    """Bring the links under "gateways" from the gateways `old` to `new`; returns what changed.

    A new gateway gets a link; a gateway whose address or plan changed gets a new link (the old
    connection closes; sessions using it hear GatewayFailed). A gateway no longer configured keeps
    its link: calls in flight may still use it. Raises NoProcess if "gateways" is not running.
    """
    if whereis(GATEWAYS) is None:
        raise NoProcess(f"no process is registered as {GATEWAYS!r}: the sip service is not running")
    before = {gw.name: gw for gw in old}
    changes: list[str] = []
    for gw in new:
        previous = before.get(gw.name)
        if previous == gw:
            continue
        if previous is not None:
            await terminate_child(GATEWAYS, gateway_name(gw.name))
            await delete_child(GATEWAYS, gateway_name(gw.name))
            changes.append(f"{gw.name}: {previous.address} -> {gw.address}")
        else:
            changes.append(f"{gw.name}: new at {gw.address}")
        await start_child(GATEWAYS, gateway_link_spec(gw, conn_settings, dispatch, link_settings))
    return changes

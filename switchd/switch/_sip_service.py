"""The "sip" supervisor: connections, gateway links and the listener, and their reload.

```
sip                 Supervisor, one_for_one
├── connections     DynamicSupervisor: one SipConnection per accepted TCP connection (TEMPORARY)
├── gateways        Supervisor, one_for_one: one GatewayLink per gateway, "gateway:<name>" (PERMANENT)
└── listener        the TCP listener (PERMANENT)
```

Why one_for_one at both levels: the children share no state. The listener finds "connections"
by name at every accept; a session finds its A-leg connection by pid and a gateway by name. So a
crashed listener is restarted alone (the connections it accepted, and the calls on them, go on);
a crashed gateway link is restarted alone and only the sessions using it hear `GatewayFailed`;
a crashed connection is TEMPORARY (its peer reconnects; restarting a process whose socket is
gone would make no sense) and never counts toward restart intensity. Start order puts the
listener last, so the first INVITE finds every gateway link already registered; shutdown, in
reverse, stops accepting first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
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

from ._gateway_link import DEFAULT_LINK_SETTINGS, LinkSettings, gateway_link_spec
from ._listener import listener_spec
from ._routing import Gateway
from ._sip_connection import ConnectionSettings, Dispatch
from ._wire import gateway_name

NAME = "sip"
CONNECTIONS = "connections"
GATEWAYS = "gateways"


def sip_service_spec(host: str, port: int, gateways: Sequence[Gateway], conn_settings: ConnectionSettings,
                     dispatch: Dispatch, link_settings: LinkSettings = DEFAULT_LINK_SETTINGS) -> ChildSpec:
    """The child spec of the "sip" supervisor (registered "sip"), listening on `host`:`port`.

    Restart intensity: 10 restarts in 10 s in each supervisor — a gateway flapping or a listener
    hitting a transient error is retried, a crash loop escalates.
    """
    flags = SupervisorFlags(Strategy.ONE_FOR_ONE, max_restarts=10, max_seconds=10.0)
    links = [gateway_link_spec(gw, conn_settings, dispatch, link_settings) for gw in gateways]
    children = [
        ChildSpec(id=CONNECTIONS, start=partial(DynamicSupervisor.start_link, name=CONNECTIONS),
                  restart=Restart.PERMANENT, type=ChildType.SUPERVISOR, shutdown=math.inf),
        ChildSpec(id=GATEWAYS, start=partial(Supervisor.start_link, links, flags, name=GATEWAYS),
                  restart=Restart.PERMANENT, type=ChildType.SUPERVISOR, shutdown=math.inf),
        listener_spec(host, port, conn_settings, dispatch, connections=CONNECTIONS),
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

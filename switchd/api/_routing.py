"""Routing endpoints: GET /routes, POST /routes/reload (what SIGHUP does) and POST /policy (the hot
code swap: the running Router is upgraded to another policy with change_code, calls in flight
untouched)."""

from __future__ import annotations

from switchd.switch import POLICIES, router_state, swap_policy

from ._dispatch import Answer, ApiRequest, Json
from ._errors import BadRequest, Unprocessable
from ._json import json_object, only
from ._state import ApiState


async def routes(state: ApiState, request: ApiRequest) -> Answer:
    request.query.done()
    router = await router_state(timeout=2.0)
    return Json({
        "policy": router.policy,
        "routes": [{
            "id": route.id, "prefix": route.prefix, "strip": route.strip, "prepend": route.prepend,
            "gateways": [{"name": t.gateway.name, "address": t.gateway.address, "transport": "tcp",
                          "priority": t.priority, "weight": t.weight, "rate_plan": t.gateway.rate_plan}
                         for t in route.targets],
        } for route in router.table],
        "reloads": state.view.reloads(),
        "swaps": router.swaps,
    })


async def reload(state: ApiState, request: ApiRequest) -> Answer:
    request.query.done()
    outcome = await state.view.reload()
    if not outcome.ok:
        raise Unprocessable(f"nothing changed: {outcome.error}")
    return Json({"ok": True, "routes": outcome.routes, "rates": outcome.rates, "gateways": list(outcome.gateways)})


async def policy(state: ApiState, request: ApiRequest) -> Answer:
    request.query.done()
    body = json_object(request.body, request.content_type)
    only(body, {"name"}, "POST /policy")
    name = body.get("name")
    if not isinstance(name, str):
        raise BadRequest(f"name must be a policy name (a string), not {name!r}")
    if name not in POLICIES:
        raise Unprocessable(f"unknown routing policy {name!r}; known: {', '.join(sorted(POLICIES))}")
    previous = (await router_state(timeout=2.0)).policy
    await swap_policy(name)
    return Json({"policy": name, "previous": previous})

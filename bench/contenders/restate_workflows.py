"""Restate in the workflows scenario: the same three steps as a Restate workflow (run from
bench/.venv-restate, see bench/requirements-restate.txt; the Restate server runs beside it).

``python -m bench.contenders.restate_workflows service CONFIG`` serves two workflows and the steps
with the Python SDK's ASGI app on hypercorn (one process, HTTP/2 cleartext, 127.0.0.1):

- ``ThreeCalls``: each step is a durable call to a handler of the service ``Steps``
  (``ctx.service_call``): a separate invocation through the server, as our ``wf.call`` to a
  specialist is a request and an answer through Kafka;
- ``ThreeRuns``: each step is a ``ctx.run`` block in the workflow itself, its result journaled by the
  server before the next step starts.

``... driver CONFIG`` registers the service with the server's admin API, then invokes one workflow per
id through the ingress and waits for its output (``POST /<workflow>/<id>/run``: the HTTP call returns
the workflow's result). ``options["mode"]`` (``calls`` or ``runs``) picks the workflow.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from typing import Any

import aiohttp
import restate
from hypercorn.asyncio import serve
from hypercorn.config import Config as HypercornConfig
from restate.server import install_shutdown_hook

from bench.contenders.workflow_common import (
    STEPS,
    DriverConfig,
    config_from_argv,
    drive,
    start_value,
    step,
)

steps = restate.Service("Steps")


@steps.handler()
async def step1(ctx: restate.Context, tally: dict[str, Any]) -> dict[str, Any]:
    return step(tally, 1)


@steps.handler()
async def step2(ctx: restate.Context, tally: dict[str, Any]) -> dict[str, Any]:
    return step(tally, 2)


@steps.handler()
async def step3(ctx: restate.Context, tally: dict[str, Any]) -> dict[str, Any]:
    return step(tally, 3)


three_calls = restate.Workflow("ThreeCalls")


@three_calls.main(name="run")
async def run_calls(ctx: restate.WorkflowContext, tally: dict[str, Any]) -> dict[str, Any]:
    for handler in (step1, step2, step3):
        tally = await ctx.service_call(handler, arg=tally)
    return tally


three_runs = restate.Workflow("ThreeRuns")


@three_runs.main(name="run")
async def run_runs(ctx: restate.WorkflowContext, tally: dict[str, Any]) -> dict[str, Any]:
    for n in range(1, STEPS + 1):
        tally = await ctx.run_typed(f"step{n}", step, restate.RunOptions(), tally, n)
    return tally


WORKFLOWS = {"calls": three_calls.name, "runs": three_runs.name}


async def _serve(config: DriverConfig) -> None:
    hypercorn = HypercornConfig()
    hypercorn.bind = [f"127.0.0.1:{config.options['service_port']}"]
    # As Restate's Python examples configure hypercorn: streams and connections never capped or
    # timed out by the service (the server keeps one HTTP/2 stream open per running invocation).
    hypercorn.h2_max_concurrent_streams = 2**31 - 1
    hypercorn.keep_alive_max_requests = 2**31 - 1
    hypercorn.keep_alive_timeout = 2**31 - 1
    hypercorn.accesslog = None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, stop.set)
    # The SDK's app takes over the loop's SIGTERM handler at its first request (to let running
    # invocations know); its hook list is how to share it.
    install_shutdown_hook(loop, stop.set, signal.SIGTERM)
    app = restate.app([steps, three_calls, three_runs])
    serving = asyncio.create_task(serve(app, hypercorn, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
    await stop.wait()
    # hypercorn's shutdown can wait forever on the connections the server keeps open; the service
    # holds nothing (the server has every journal), so it need not wait for them.
    await asyncio.wait({serving}, timeout=2.0)
    os._exit(0)


async def _register(http: aiohttp.ClientSession, admin: str, service: str, within: float = 60.0) -> None:
    """Tell the server where the service is; retried until both are up."""
    deadline = time.monotonic() + within
    while True:
        try:
            async with http.post(f"{admin}/deployments", json={"uri": service}) as response:
                if response.status < 300:
                    return
                problem = f"{response.status} {(await response.text())[:300]}"
        except aiohttp.ClientError as exc:
            problem = repr(exc)
        if time.monotonic() > deadline:
            raise RuntimeError(f"registering {service} with {admin} failed: {problem}")
        await asyncio.sleep(0.2)


async def _invoke(http: aiohttp.ClientSession, url: str, value: dict[str, Any]) -> tuple[int, Any]:
    async with http.post(url, json=value) as response:
        if response.status >= 300:
            return response.status, await response.text()
        return response.status, await response.json()


async def _await_ingress(http: aiohttp.ClientSession, url: str, probe: str, within: float = 60.0) -> None:
    """Until the ingress knows the newly registered workflow (it answers 404 until then): runs one
    untimed workflow, ``probe``."""
    deadline = time.monotonic() + within
    while True:
        status, body = await _invoke(http, url.format(id=probe), start_value(probe, 0))
        if status < 300:
            return
        if status != 404 or time.monotonic() > deadline:
            raise RuntimeError(f"the ingress answered {status}: {body}")
        await asyncio.sleep(0.2)


async def _drive(config: DriverConfig) -> None:
    options = config.options
    ingress = f"http://127.0.0.1:{options['ingress_port']}"
    url = f"{ingress}/{WORKFLOWS[options['mode']]}/{{id}}/run"
    # One pooled connection per outstanding workflow (aiohttp: httpx's pool cost more CPU than the
    # server here).
    connector = aiohttp.TCPConnector(limit=config.concurrency)
    timeout = aiohttp.ClientTimeout(total=config.timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        admin, service = (f"http://127.0.0.1:{options[port]}" for port in ("admin_port", "service_port"))
        await _register(http, admin, service)
        await _await_ingress(http, url, f"{config.run}-probe")

        async def run_one(workflow_id: str, value: dict[str, Any]) -> dict[str, Any]:
            status, body = await _invoke(http, url.format(id=workflow_id), value)
            if status >= 300:
                raise RuntimeError(f"{status}: {str(body)[:200]}")
            output: dict[str, Any] = body
            return output

        await drive(run_one, config)


def main() -> None:
    logging.basicConfig(level=os.environ.get("BENCH_LOG_LEVEL", "WARNING"))
    role, config = config_from_argv()
    if role == "service":
        asyncio.run(_serve(config))
    elif role == "driver":
        asyncio.run(_drive(config))
    else:
        raise SystemExit(f"unknown role {role!r}: service or driver")


if __name__ == "__main__":
    main()

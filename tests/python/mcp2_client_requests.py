"""Drives the gateway with the official MCP Python SDK 2.x client through a tool call during
which the server asks the client for a sampled message, an elicitation and its roots, once
per protocol era: on a legacy session (`mode="legacy"`) the server sends standalone requests
and the client POSTs its responses through the gateway on its sealed session; on 2026-07-28
the server answers `input_required` and the client retries the call, through the gateway's
checks, with the answers. Either way the tool's result shows every answer arrived.

usage: mcp2_client_requests.py GATEWAY_URL TOKEN
Prints "mcp2 requests e2e: all checks passed" on success; exits 1 with the failed check
otherwise.
"""

import asyncio
import sys

import httpx2
from mcp import Client, types
from mcp.client.streamable_http import streamable_http_client


async def run(url: str, token: str, mode: str) -> None:
    asked = []

    async def sampling(context, params):
        asked.append("sampling/createMessage")
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text="a summary by the client's model"),
            model="client-model",
            stop_reason="endTurn",
        )

    async def elicitation(context, params):
        asked.append("elicitation/create")
        return types.ElicitResult(action="accept", content={"approve": True})

    async def list_roots(context):
        asked.append("roots/list")
        return types.ListRootsResult(roots=[types.Root(uri="file:///work/project", name="project")])

    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"})
    transport = streamable_http_client(f"{url}/v1/mcp", http_client=http)
    async with Client(
        transport,
        mode=mode,
        raise_exceptions=True,
        sampling_callback=sampling,
        elicitation_callback=elicitation,
        list_roots_callback=list_roots,
    ) as client:
        result = await client.call_tool("ask_client", {})
        text = result.content[0].text
        for part in (
            "sampled=a summary by the client's model",
            "elicited=accept:True",
            "roots=file:///work/project",
        ):
            assert part in text, f"{mode}: {part!r} not in {text!r}"
        assert sorted(set(asked)) == ["elicitation/create", "roots/list", "sampling/createMessage"], (
            mode,
            asked,
        )


async def main(url: str, token: str) -> None:
    await run(url, token, "legacy")
    await run(url, token, "auto")
    print("mcp2 requests e2e: all checks passed")


if __name__ == "__main__":
    try:
        asyncio.run(asyncio.wait_for(main(sys.argv[1], sys.argv[2]), 90))
    except Exception as err:  # noqa: BLE001 - report any failure as the test's message
        import traceback

        traceback.print_exc()
        print(f"mcp2 requests e2e FAILED: {err!r}", file=sys.stderr)
        sys.exit(1)

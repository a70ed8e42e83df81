"""Drives the gateway with the official MCP Python SDK client (mcp 1.x) through a tool call
during which the server asks the client: `sampling/createMessage` and `elicitation/create`
on the call's event stream, `roots/list` on the session's GET stream. The client answers
each through the gateway (POSTed JSON-RPC responses on its sealed session); the tool's
result shows every answer reached the server.

usage: mcp_client_requests.py GATEWAY_URL TOKEN
Prints "mcp requests e2e: all checks passed" on success; exits 1 with the failed check
otherwise.
"""

import asyncio
import sys

from mcp import ClientSession, types
from mcp.client.streamable_http import streamablehttp_client

asked = []


async def sampling(context, params: types.CreateMessageRequestParams):
    asked.append("sampling/createMessage")
    assert params.messages[0].content.text == "Summarize invoice 7", params
    return types.CreateMessageResult(
        role="assistant",
        content=types.TextContent(type="text", text="a summary by the client's model"),
        model="client-model",
        stopReason="endTurn",
    )


async def elicitation(context, params: types.ElicitRequestParams):
    asked.append("elicitation/create")
    assert "invoice 7" in params.message, params
    return types.ElicitResult(action="accept", content={"approve": True})


async def list_roots(context):
    asked.append("roots/list")
    return types.ListRootsResult(roots=[types.Root(uri="file:///work/project", name="project")])


async def main(url: str, token: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with streamablehttp_client(f"{url}/v1/mcp", headers=headers) as (read, write, session_id):
        async with ClientSession(
            read,
            write,
            sampling_callback=sampling,
            elicitation_callback=elicitation,
            list_roots_callback=list_roots,
        ) as session:
            await session.initialize()
            assert session_id(), "no session id reached the client"
            result = await session.call_tool("ask_client", {})
            assert not result.isError, result
            text = result.content[0].text
            for part in (
                "sampled=a summary by the client's model",
                "elicited=accept:True",
                "roots=file:///work/project",
            ):
                assert part in text, f"{part!r} not in {text!r}"
            assert asked == ["sampling/createMessage", "elicitation/create", "roots/list"], asked
    print("mcp requests e2e: all checks passed")


if __name__ == "__main__":
    try:
        asyncio.run(asyncio.wait_for(main(sys.argv[1], sys.argv[2]), 60))
    except Exception as err:  # noqa: BLE001 - report any failure as the test's message
        import traceback

        traceback.print_exc()
        print(f"mcp requests e2e FAILED: {err!r}", file=sys.stderr)
        sys.exit(1)

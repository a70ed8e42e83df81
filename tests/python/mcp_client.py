"""Drives the gateway with the official MCP Python SDK client (mcp 1.x) over Streamable
HTTP, as an agent would: initialize, a tools/list the token narrows, an allowed call, a call
the policy denies, a long-running tool whose progress must arrive before it finishes, and
the session's end.

usage: mcp_client.py GATEWAY_URL TOKEN
Prints "mcp e2e: all checks passed" on success; exits 1 with the failed check otherwise.
"""

import asyncio
import sys
import time

from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client
from mcp.shared.exceptions import McpError


async def main(url: str, token: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with streamablehttp_client(f"{url}/v1/mcp", headers=headers) as (read, write, session_id):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            assert init.serverInfo.name == "upstream-under-test", init
            assert session_id(), "the upstream's session id reached the client"

            tools = await session.list_tools()
            names = sorted(t.name for t in tools.tools)
            assert names == ["read_invoice", "slow_report"], names

            result = await session.call_tool("read_invoice", {"id": "7"})
            assert not result.isError, result
            assert "invoice 7" in result.content[0].text, result

            try:
                await session.call_tool("pay", {"amount": 10})
                raise AssertionError("pay was not refused")
            except McpError as e:
                # The token lists only read_invoice and slow_report: capability refusal.
                assert e.error.code == -32010, e.error

            started = time.monotonic()
            progress_at = []

            async def on_progress(progress, total, message):
                progress_at.append((progress, time.monotonic() - started))

            result = await session.call_tool("slow_report", {}, progress_callback=on_progress)
            finished = time.monotonic() - started
            assert "report done" in result.content[0].text, result
            assert progress_at, "no progress notification arrived"
            first = progress_at[0][1]
            assert first < finished - 1.0, (
                f"first progress at {first:.2f}s, answer at {finished:.2f}s: not streamed"
            )
    print("mcp e2e: all checks passed")


if __name__ == "__main__":
    try:
        asyncio.run(main(sys.argv[1], sys.argv[2]))
    except Exception as err:  # noqa: BLE001 - report any failure as the test's message
        import traceback

        traceback.print_exc()
        print(f"mcp e2e FAILED: {err!r}", file=sys.stderr)
        sys.exit(1)

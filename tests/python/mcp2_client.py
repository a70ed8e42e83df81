"""Drives the gateway with the official MCP Python SDK 2.x client, which discovers the server
(`server/discover`) and speaks the stateless 2026-07-28 revision: every request carries
`MCP-Protocol-Version`, `Mcp-Method` and `Mcp-Name`, which the gateway checks against the
body before anything else.

usage: mcp2_client.py GATEWAY_URL TOKEN
Prints "mcp2 e2e: all checks passed" on success; exits 1 with the failed check otherwise.
"""

import asyncio
import sys

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError


async def main(url: str, token: str) -> None:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"})
    transport = streamable_http_client(f"{url}/v1/mcp", http_client=http)
    async with Client(transport, raise_exceptions=True) as client:
        version = getattr(client, "protocol_version", None)
        assert version == "2026-07-28", version

        tools = await client.list_tools()
        names = sorted(t.name for t in tools.tools)
        assert names == ["read_invoice"], names

        result = await client.call_tool("read_invoice", {"id": "7"})
        assert "invoice 7" in result.content[0].text, result

        try:
            result = await client.call_tool("pay", {"amount": 10})
        except MCPError as e:
            assert e.error.code == -32010, e.error
        else:
            raise AssertionError(f"pay was not refused: {result}")
    print("mcp2 e2e: all checks passed")


if __name__ == "__main__":
    try:
        asyncio.run(main(sys.argv[1], sys.argv[2]))
    except Exception as err:  # noqa: BLE001 - report any failure as the test's message
        import traceback

        traceback.print_exc()
        print(f"mcp2 e2e FAILED: {err!r}", file=sys.stderr)
        sys.exit(1)

"""An MCP server built with the official Python SDK 2.x (MCPServer), which speaks the
2026-07-28 revision, served over Streamable HTTP on a loopback port.

usage: mcp2_server.py PORT
Prints "ready" before it starts listening.
"""

import sys

from mcp.server.mcpserver import MCPServer

port = int(sys.argv[1])
server = MCPServer("upstream-2026")


@server.tool()
def read_invoice(id: str) -> str:
    """Reads an invoice."""
    return f"invoice {id}: 42.00 EUR"


@server.tool()
def pay(amount: float) -> str:
    """Pays."""
    return f"paid {amount}"


if __name__ == "__main__":
    print("ready", flush=True)
    server.run(transport="streamable-http", host="127.0.0.1", port=port)

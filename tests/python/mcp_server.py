"""An MCP server built with the official Python SDK (mcp 1.x, FastMCP), served over
Streamable HTTP on a loopback port, for the gateway's end-to-end tests.

usage: mcp_server.py PORT
Prints "ready" once listening.
"""

import asyncio
import sys

from mcp import types
from mcp.server.fastmcp import Context, FastMCP
from pydantic import BaseModel

port = int(sys.argv[1])
server = FastMCP("upstream-under-test", host="127.0.0.1", port=port, log_level="WARNING")


@server.tool()
def read_invoice(id: str) -> str:
    """Reads an invoice."""
    return f"invoice {id}: 42.00 EUR"


@server.tool()
def pay(amount: float) -> str:
    """Pays."""
    return f"paid {amount}"


@server.tool()
async def slow_report(ctx: Context) -> str:
    """Reports progress, then works for a while."""
    await ctx.report_progress(1, 2)
    await asyncio.sleep(1.5)
    await ctx.report_progress(2, 2)
    return "report done"


class Approval(BaseModel):
    approve: bool


@server.tool()
async def ask_client(ctx: Context) -> str:
    """Asks the client's model (on this call's stream), its user (the same) and its roots
    (on the session's GET stream), and reports what came back."""
    sampled = await ctx.session.create_message(
        messages=[
            types.SamplingMessage(
                role="user", content=types.TextContent(type="text", text="Summarize invoice 7")
            )
        ],
        max_tokens=32,
        related_request_id=ctx.request_id,
    )
    elicited = await ctx.elicit("Approve paying invoice 7?", Approval)
    roots = await ctx.session.list_roots()
    approve = elicited.data.approve if elicited.data else None
    uris = ",".join(str(r.uri) for r in roots.roots)
    return f"sampled={sampled.content.text}; elicited={elicited.action}:{approve}; roots={uris}"


if __name__ == "__main__":
    print("ready", flush=True)
    server.run(transport="streamable-http")

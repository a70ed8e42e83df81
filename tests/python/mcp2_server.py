"""An MCP server built with the official Python SDK 2.x (MCPServer), which speaks the
2026-07-28 revision, served over Streamable HTTP on a loopback port.

usage: mcp2_server.py PORT
Prints "ready" before it starts listening.
"""

import sys
from typing import Annotated

from mcp import types
from mcp.server.mcpserver import Elicit, ListRoots, MCPServer, Resolve, Sample
from pydantic import BaseModel

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


class Approval(BaseModel):
    approve: bool


def ask_model() -> Sample:
    message = types.SamplingMessage(
        role="user", content=types.TextContent(type="text", text="Summarize invoice 7")
    )
    return Sample([message], max_tokens=32)


def ask_user() -> Elicit[Approval]:
    return Elicit("Approve paying invoice 7?", Approval)


def ask_roots() -> ListRoots:
    return ListRoots()


@server.tool()
async def ask_client(
    sampled: Annotated[types.CreateMessageResult, Resolve(ask_model)],
    approval: Annotated[Approval, Resolve(ask_user)],
    roots: Annotated[types.ListRootsResult, Resolve(ask_roots)],
) -> str:
    """Asks the client's model, its user and its roots: standalone requests on a legacy
    session, input_required rounds on 2026-07-28; reports what came back."""
    uris = ",".join(str(r.uri) for r in roots.roots)
    return f"sampled={sampled.content.text}; elicited=accept:{approval.approve}; roots={uris}"


if __name__ == "__main__":
    print("ready", flush=True)
    server.run(transport="streamable-http", host="127.0.0.1", port=port)

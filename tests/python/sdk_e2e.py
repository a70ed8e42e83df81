"""Drives a running `intentgate dev` gateway with the published SDK (intentgate==0.3.0).

Usage: sdk_e2e.py URL TOKEN   (TOKEN: allows read_invoice, send_email_internal,
delete_customer; max_calls 4). Exits non-zero with a message on the first failed check.
"""
import sys

from intentgate import (BudgetError, CapabilityError, Gateway, PolicyError,
                        ProtocolError, attenuate)


def expect(exc_type, code, fn):
    try:
        fn()
    except exc_type as e:
        assert e.code == code, f"{exc_type.__name__}: code {e.code} != {code}"
        return e
    raise AssertionError(f"expected {exc_type.__name__}")


def main() -> None:
    url, token = sys.argv[1], sys.argv[2]
    with Gateway(url, token) as gw:
        r = gw.tool_call("read_invoice", {"id": "INV-1"})  # budget 1/4
        assert not r.is_error, r
        assert "INV-1" in r.content[0].text, r
        assert r.intentgate is not None and r.intentgate.decision == "allow", r

        e = expect(PolicyError, -32012, lambda: gw.tool_call("delete_customer", {"id": "C1"}))
        assert "denied by default" in str(e), e

    expect(CapabilityError, -32010, lambda: Gateway(url, "not-a-token").tool_call("read_invoice"))
    expect(CapabilityError, -32010, lambda: Gateway(url).tool_call("read_invoice"))

    # A token attenuated by the SDK verifies, and its narrowing is enforced.
    child = attenuate(token, add_tools=["read_invoice"], deny_tools=["delete_customer"])
    with Gateway(url, child) as gw:
        assert not gw.tool_call("read_invoice", {"id": "INV-2"}).is_error  # budget 2/4
        e = expect(CapabilityError, -32010, lambda: gw.tool_call("send_email_internal", {"to": "a@b"}))
        assert "not in allowed set" in str(e), e

    # Non-ASCII tool names: the SDK signs them differently from Go, so the child is refused.
    odd = attenuate(token, add_tools=["lire_facturé"])
    e = expect(CapabilityError, -32010, lambda: Gateway(url, odd).tool_call("read_invoice"))
    assert "signature mismatch" in str(e), e

    # Budget: the root's max_calls (4) is shared by the attenuated child.
    with Gateway(url, child) as gw:
        gw.tool_call("read_invoice")  # 3/4
        gw.tool_call("read_invoice")  # 4/4
        e = expect(BudgetError, -32013, lambda: gw.tool_call("read_invoice"))
        assert "max_calls exceeded (5 > 4)" in str(e), e

    # Other JSON-RPC errors map to ProtocolError.
    with Gateway(url, token) as gw:
        expect(ProtocolError, -32602, lambda: gw.tool_call("read_invoice", [1]))  # arguments not an object
    print("sdk e2e: all checks passed")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as err:
        print(f"sdk e2e FAILED: {err}", file=sys.stderr)
        sys.exit(1)

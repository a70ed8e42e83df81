#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (fuzz/corpus/<target>/): valid inputs, the
malformed cases the tests already send, and the Go and SDK vectors. Re-run after adding a
case; the files are committed and replayed by tests/tests/fuzz_corpus.rs."""

import hashlib
import json
import os
import sys

ROOT = os.path.dirname(os.path.abspath(__file__))
VECTORS = os.path.join(ROOT, "..", "shared", "tests", "vectors")


def write(target, items):
    d = os.path.join(ROOT, "corpus", target)
    os.makedirs(d, exist_ok=True)
    for item in items:
        data = item.encode() if isinstance(item, str) else item
        name = hashlib.sha1(data).hexdigest()[:16]
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


def heads():
    body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_invoice"}}'
    return [
        f"POST /v1/mcp HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer abc\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}",
        "GET /v1/mcp?x=1 HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nMcp-Session-Id: s-1\r\nMCP-Protocol-Version: 2025-06-18\r\nLast-Event-ID: 7\r\n\r\n",
        "POST /v1/mcp HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nMcp-Method: tools/call\r\nMcp-Name: =?base64?cg==?=\r\nMcp-Param-Region: eu\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "DELETE /v1/mcp HTTP/1.0\r\nConnection: keep-alive\r\nOrigin: http://localhost\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n",
        "POST /v1/tool-call HTTP/1.1\r\nContent-Length: 2\r\nExpect: 100-continue\r\nContent-Encoding: gzip\r\nConnection: close\r\ntraceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n\r\n{}",
        "POST /v1/mcp HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST /v1/mcp HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        "POST /v1/mcp HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        "POST /v1/mcp HTTP/1.1\r\nContent-Type: a\r\nContent-Type: b\r\n\r\n",
        "GET / HTTP/1.1\r\nX-Intent-Prompt: pay the invoice\r\nX-IntentGate-Elevation-Id: e1\r\n\r\n",
        "GET /\x00 HTTP/1.1\r\n\r\n",
        "POST /v1/mcp HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        "POST /v1/mcp HTTP/1.1\r\nAuthorization: Bearer a\r\nauthorization: Bearer b\r\n\r\n",
        "GET / HTTP/1.1\r\nX-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 2.2.2.2\r\n\r\n",
    ]


def chunked():
    return [
        b"\x10" + b"5\r\nhello\r\n0\r\n\r\n",
        b"\x40" + b"3;ext=1\r\nabc\r\n4\r\ndefg\r\n0\r\nTrailer: x\r\n\r\n",
        b"\x01" + b"ff\r\n" + b"a" * 255 + b"\r\n0\r\n\r\n",
        b"\x10" + b"5\r\nhel",
        b"\x10" + b"zz\r\n",
        b"\x10" + b"5\r\nhelloXX0\r\n\r\n",
    ]


def envelopes():
    return [
        '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_invoice","arguments":{"id":"INV-7"}}}',
        '{"jsonrpc":"2.0","method":"notifications/initialized"}',
        '{"jsonrpc":"2.0","id":"a","method":"resources/read","params":{"uri":"file:///public/a"}}',
        '{"jsonrpc":"2.0","id":null,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"p"},"argument":{"name":"a","value":"b"}}}',
        '{"jsonrpc":"2.0","id":1,"method":"ping","Method":"tools/call","params":{"name":"read_invoice"}}',
        '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_invoice","Name":"delete_customer"}}',
        '{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///ok","URI":"file:///etc/shadow"}}',
        '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"n\\u0061me":"read_invoice"}}',
        '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_invoice","arguments":{"path":"/ok","PATH":"/etc"}}}',
        '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"a":{"\u212a":1,"k":2}}}}',
        '{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}',
        '[{"jsonrpc":"2.0","id":1,"method":"ping"}]',
        '{"jsonrpc":"2.0","id":1e400,"method":"ping"}',
        '{"jsonrpc":"2.0","id":"\\ud800","method":"ping"}',
        '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"n":1e999}}}',
        '{"jsonrpc":"2.0","id":1,"method":"ping","params":[1,2]}',
    ]


def tokens():
    out = []
    with open(os.path.join(VECTORS, "go_tokens.json")) as f:
        t = json.load(f)
    out += [c["wire"] for c in t["cases"]]
    out += [c["wire"] for c in t["decode_cases"] if "wire" in c]
    with open(os.path.join(VECTORS, "sdk_attenuate_v3.json")) as f:
        s = json.load(f)
    out += [c["token"] for c in s["cases"] if "token" in c]
    # Caveat chains as bytes (kind, two parameters per caveat): see caveats_from.
    out += [bytes([2, 3, 0, 7, 1, 0, 9, 4, 0]), bytes([6, 1, 0, 8, 5, 0, 4, 2, 0, 1, 0, 0]), bytes(range(30))]
    return out


def audit_lines():
    with open(os.path.join(VECTORS, "go_audit.json")) as f:
        d = json.load(f)
    return [json.dumps(e["input"]) for e in d["events"]] + ['{"ts":"x"}', "{}"]


def export_lines():
    with open(os.path.join(VECTORS, "go_audit.json")) as f:
        d = json.load(f)
    rows = []
    for i, e in enumerate(d["events"]):
        row = dict(e["input"])
        row.update({"id": i + 1, "seq": i + 1, "prev_hash": e.get("prev_hash", ""), "hash": e.get("hash", "")})
        rows.append(json.dumps(row))
    return ["\n".join(rows), rows[0], '{"id":"one"}', '{"truncated":true}']


def streams():
    return [
        b"\x05event: message\ndata: {\"a\":1}\n\n",
        b"\x10: keep-alive\r\nid: 1\r\nevent: message\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\nretry: 500\ndata: two\n\nid\rdata: three\r\r\n",
        b"\x02data: " + b"x" * 300 + b"\n\n",
        b"\x03data: \xff\n\n",
        b"\x01id: a\x00b\ndata: z\n\n",
    ]


def args():
    return [
        '{"id":"INV-7","amount_eur":100}',
        '{"a":{"b":[1,2,{"c":null}]},"t":true}',
        '{"n":1e308,"m":-0.0}',
        '{"k":"\\u00e9"}',
        "[]",
    ]


def main():
    write("http_head", heads())
    write("chunked_body", chunked())
    write("jsonrpc_envelope", envelopes())
    write("token_chain", tokens())
    write("audit_canonical", audit_lines())
    write("export_lines", export_lines())
    write("sse_events", streams())
    write("policy_input", args())
    return 0


if __name__ == "__main__":
    sys.exit(main())

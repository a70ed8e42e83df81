#!/usr/bin/env python3
"""Golden vectors: v3 capability tokens attenuated by the Python SDK.

This script:
  1. mints base v3 capability tokens with a fixed master key, byte-for-byte
     the way the Go gateway does (compact JSON payload, HMAC-SHA256 chain,
     Go struct field order, omitempty rules, base64url without padding);
  2. attenuates them with the published Python SDK (`intentgate==0.3.0`,
     `intentgate.attenuate`), single calls and chains of 2-3 calls;
  3. adds a few tampered tokens that must fail signature verification;
  4. verifies every vector again with an independent Go-style decoder
     (Go JSON-to-struct decoding, Go-canonical re-marshal, HMAC chain,
     caveat evaluation as in the gateway's Token.Check);
  5. writes shared/tests/vectors/sdk_attenuate_v3.json.

Output is deterministic: fixed key, fixed jti bytes, fixed timestamps, and the
SDK's `expires_in_seconds` clock is pinned.

Usage (needs only the stdlib plus the SDK):
    python3 -m venv /work/venv-sdk && /work/venv-sdk/bin/pip install intentgate==0.3.0
    /work/venv-sdk/bin/python tests/python/gen_token_vectors.py            # (re)write the file
    /work/venv-sdk/bin/python tests/python/gen_token_vectors.py --check    # exit 1 if stale
    /work/venv-sdk/bin/python tests/python/gen_token_vectors.py --verify   # re-verify the file
"""

from __future__ import annotations

import argparse
import base64
import difflib
import hashlib
import hmac
import json
import struct
import sys
import types
from pathlib import Path
from typing import Any

try:
    import intentgate
    import intentgate.capability as igcap
except ImportError:  # pragma: no cover - environment problem
    sys.stderr.write(
        "error: the `intentgate` package is not importable; run this script with a "
        "python that has `pip install intentgate==0.3.0`\n"
    )
    sys.exit(2)

SDK_VERSION = "0.3.0"
GENERATOR = "tests/python/gen_token_vectors.py"
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / "shared" / "tests" / "vectors" / "sdk_attenuate_v3.json"

SCHEMA_VERSION = 3
MASTER_KEY = bytes(range(32))
WRONG_MASTER_KEY = bytes(range(32, 64))
IAT = 1767225600  # 2026-01-01T00:00:00Z
NOW = IAT + 3600  # default evaluation time for allowed/denied checks
SDK_CLOCK = IAT + 1000  # pinned time.time() for expires_in_seconds


# ---------------------------------------------------------------------------
# base64url (RFC 4648 section 5, no padding)
# ---------------------------------------------------------------------------


def b64url(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode("ascii")


def b64url_decode_strict(s: str) -> bytes:
    """Go base64.RawURLEncoding.DecodeString: no padding, URL alphabet only."""
    alphabet = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    if any(ch not in alphabet for ch in s) or len(s) % 4 == 1:
        raise ValueError("not raw base64url")
    raw = base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
    if b64url(raw) != s:  # non-canonical trailing bits (Go Strict is off, but keep tight)
        raise ValueError("non-canonical base64url")
    return raw


# ---------------------------------------------------------------------------
# Go encoding/json (Go 1.22+) string escaping and compact marshal
# ---------------------------------------------------------------------------

_HEX = "0123456789abcdef"


def go_json_string(s: str) -> str:
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\b":
            out.append("\\b")
        elif ch == "\f":
            out.append("\\f")
        elif o < 0x20 or ch in "<>&" or o in (0x2028, 0x2029):
            out.append("\\u" + "".join(_HEX[(o >> s_) & 0xF] for s_ in (12, 8, 4, 0)))
        elif 0xD800 <= o <= 0xDFFF:  # lone surrogate: Go has U+FFFD here
            out.append("\ufffd")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def go_marshal(v: Any) -> bytes:
    """Compact JSON like Go's json.Marshal for the shapes used here.

    Dicts are emitted in insertion order (callers build them in Go struct
    declaration order and apply omitempty themselves).
    """

    def enc(x: Any) -> str:
        if isinstance(x, bool):
            return "true" if x else "false"
        if isinstance(x, int):
            return str(x)
        if isinstance(x, str):
            return go_json_string(x)
        if x is None:
            return "null"
        if isinstance(x, list):
            return "[" + ",".join(enc(i) for i in x) + "]"
        if isinstance(x, dict):
            return "{" + ",".join(go_json_string(k) + ":" + enc(val) for k, val in x.items()) + "}"
        raise TypeError(f"unsupported type {type(x)!r}")

    return enc(v).encode("utf-8")


# ---------------------------------------------------------------------------
# Go-side structs (capability.Token / capability.Caveat) and canonical forms
# ---------------------------------------------------------------------------

CAVEAT_FIELDS = (("t", str), ("tools", list), ("agent", str), ("exp", int), ("max_calls", int), ("step_up_at", int))
TOKEN_FIELDS = (
    ("v", int), ("jti", str), ("root_jti", str), ("iss", str), ("tenant", str),
    ("sub", str), ("iat", int), ("nbf", int), ("cav", list), ("sig", str),
)


def caveat_canonical(c: dict[str, Any]) -> dict[str, Any]:
    """Caveat as Go re-marshals it: order t,tools,agent,exp,max_calls,step_up_at; omitempty."""
    out: dict[str, Any] = {"t": c.get("t", "")}
    if c.get("tools"):
        out["tools"] = list(c["tools"])
    if c.get("agent"):
        out["agent"] = c["agent"]
    for k in ("exp", "max_calls", "step_up_at"):
        if c.get(k):
            out[k] = int(c[k])
    return out


def payload_canonical(t: dict[str, Any]) -> dict[str, Any]:
    out = {k: t[k] for k in ("v", "jti", "root_jti", "iss", "tenant", "sub", "iat")}
    if t.get("nbf"):
        out["nbf"] = t["nbf"]
    return out


def token_canonical(t: dict[str, Any]) -> dict[str, Any]:
    """Whole Token as Go's json.Marshal would emit it (cav, nbf omitempty)."""
    out = payload_canonical(t)
    if t.get("cav"):
        out["cav"] = [caveat_canonical(c) for c in t["cav"]]
    out["sig"] = t["sig"]
    return out


def hmac_chain(key: bytes, tok: dict[str, Any]) -> list[bytes]:
    """[sig0, sig1, ..., sigN] over the Go-canonical bytes."""
    sigs = [hmac.new(key, go_marshal(payload_canonical(tok)), hashlib.sha256).digest()]
    for c in tok.get("cav") or []:
        sigs.append(hmac.new(sigs[-1], go_marshal(caveat_canonical(c)), hashlib.sha256).digest())
    return sigs


class GoDecodeError(ValueError):
    pass


class _Obj(list):
    """A decoded JSON object, kept as its (key, value) pairs in order."""


def _go_field_value(name: str, typ: type, val: Any, default: Any) -> Any:
    if val is None:  # JSON null leaves the Go zero value / previous value untouched
        return default
    if typ is int:
        if isinstance(val, bool) or not isinstance(val, int):
            raise GoDecodeError(f"field {name}: not an integer")
        if not -(2**63) <= val < 2**63:
            raise GoDecodeError(f"field {name}: overflow")
        return val
    if typ is str:
        if not isinstance(val, str):
            raise GoDecodeError(f"field {name}: not a string")
        return val
    if not isinstance(val, list) or isinstance(val, _Obj):
        raise GoDecodeError(f"field {name}: not an array")
    return val


def _go_struct(pairs: list[tuple[str, Any]], fields: tuple[tuple[str, type], ...]) -> dict[str, Any]:
    """Map JSON object pairs onto a Go struct: exact or case-insensitive key
    match, unknown keys ignored, last duplicate wins."""
    out: dict[str, Any] = {n: ("" if t is str else 0 if t is int else None) for n, t in fields}
    for key, val in pairs:
        match = next((n for n, _ in fields if n == key), None)
        if match is None:
            match = next((n for n, _ in fields if n.lower() == key.lower()), None)
        if match is None:
            continue
        typ = dict(fields)[match]
        out[match] = _go_field_value(match, typ, val, out[match])
    return out


def go_decode_token(wire: str) -> dict[str, Any]:
    """capability.Decode: strict raw base64url, then JSON into the Go structs."""
    try:
        raw = b64url_decode_strict(wire)
    except ValueError as exc:
        raise GoDecodeError("token is not valid base64url") from exc
    try:
        doc = json.loads(raw.decode("utf-8", errors="replace"), object_pairs_hook=_Obj)
    except json.JSONDecodeError as exc:
        raise GoDecodeError("token JSON is malformed") from exc
    if not isinstance(doc, _Obj):
        raise GoDecodeError("token JSON is malformed")
    tok = _go_struct(doc, TOKEN_FIELDS)
    cavs = []
    for item in tok["cav"] or []:
        if item is None:
            cavs.append(_go_struct([], CAVEAT_FIELDS))
            continue
        if not isinstance(item, _Obj):
            raise GoDecodeError("token JSON is malformed")
        c = _go_struct(item, CAVEAT_FIELDS)
        if c["tools"] is not None:
            tools = []
            for t in c["tools"]:
                if t is not None and not isinstance(t, str):
                    raise GoDecodeError("token JSON is malformed")
                tools.append(t or "")
            c["tools"] = tools
        cavs.append(c)
    tok["cav"] = cavs
    return tok


def go_validate(tok: dict[str, Any]) -> str | None:
    if tok["v"] != SCHEMA_VERSION:
        return "unknown token schema version"
    for field, msg in (
        ("jti", "token id (jti) is required"),
        ("sub", "token subject (sub) is required"),
        ("iat", "token issued-at (iat) is required"),
        ("root_jti", "token root id (root_jti) is required"),
        ("tenant", "token tenant is required"),
    ):
        if not tok[field]:
            return msg
    return None


def go_verify(tok: dict[str, Any], key: bytes) -> str | None:
    """capability.Token.Verify. Returns the Go error string, or None when valid."""
    err = go_validate(tok)
    if err:
        return err
    expected = hmac_chain(key, tok)[-1]
    try:
        provided = b64url_decode_strict(tok["sig"])
    except ValueError:
        return "signature is not valid base64url"
    if not hmac.compare_digest(provided, expected):
        return "signature mismatch"
    return None


def go_quote(s: str) -> str:
    if not all(0x20 <= ord(ch) < 0x7F for ch in s):
        raise ValueError(f"go_quote only handles printable ASCII, got {s!r}")
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def go_check(tok: dict[str, Any], agent: str, tool: str, now: int) -> str | None:
    """capability.Token.Check (NG). Returns the Go error string or None."""
    if tok["nbf"] and now < tok["nbf"]:
        return "token not yet valid (nbf in future)"
    for i, c in enumerate(tok["cav"]):
        t = c["t"]
        reason = None
        if t == "exp":
            if c["exp"] == 0:
                reason = "expiry caveat missing exp value"
            elif now >= c["exp"]:
                reason = "expired"
        elif t == "agent_lock":
            if not c["agent"]:
                reason = "agent_lock caveat missing agent value"
            elif c["agent"] != agent:
                reason = f"token bound to {go_quote(c['agent'])}, request from {go_quote(agent)}"
        elif t == "tool_allow":
            if tool not in (c["tools"] or []):
                reason = f"tool {go_quote(tool)} not in allowed set"
        elif t == "tool_deny":
            if tool in (c["tools"] or []):
                reason = f"tool {go_quote(tool)} is forbidden"
        elif t == "max_calls":
            pass
        elif t == "step_up":
            if c["step_up_at"] < 0:
                reason = "step_up caveat has negative step_up_at value"
        else:
            reason = f"unknown caveat type {go_quote(t)} (deny by default)"
        if reason is not None:
            return f"caveat {i} ({t}): {reason}"
    return None


# ---------------------------------------------------------------------------
# Minting (what the Go gateway's capability.Mint + Encode produce)
# ---------------------------------------------------------------------------


def fixed_jti(label: str, iat: int) -> str:
    """16 bytes: 4-byte big-endian unix seconds + 12 fixed 'random' bytes."""
    tail = hashlib.sha256(b"intentgate-vector-jti:" + label.encode("ascii")).digest()[:12]
    return b64url(struct.pack(">I", iat) + tail)


def mint(
    label: str,
    *,
    sub: str,
    tenant: str = "default",
    iss: str = "intentgate",
    iat: int = IAT,
    nbf: int = 0,
    expiry: int = 0,
    caveats: tuple[dict[str, Any], ...] = (),
    key: bytes = MASTER_KEY,
) -> str:
    """Mint like capability.Mint: agent_lock first, then exp (if any), then
    the caller's caveats; sign; Encode = base64url(json.Marshal(Token))."""
    for s in (sub, tenant, iss):
        # Base tokens stay in the subset where Python's compact json.dumps == Go's Marshal.
        assert s.isascii() and not set(s) & set('<>&"\\') and s.isprintable(), s
    jti = fixed_jti(label, iat)
    tok: dict[str, Any] = {
        "v": SCHEMA_VERSION, "jti": jti, "root_jti": jti, "iss": iss, "tenant": tenant,
        "sub": sub, "iat": iat, "nbf": nbf,
    }
    cav = [{"t": "agent_lock", "agent": sub}]
    if expiry:
        cav.append({"t": "exp", "exp": expiry})
    cav.extend(caveats)
    tok["cav"] = [caveat_canonical(c) for c in cav]
    tok["sig"] = ""
    tok["sig"] = b64url(hmac_chain(key, tok)[-1])
    canon = token_canonical(tok)
    wire_json = go_marshal(canon)
    assert wire_json == json.dumps(canon, separators=(",", ":")).encode("ascii")
    return b64url(wire_json)


# ---------------------------------------------------------------------------
# Calling the SDK
# ---------------------------------------------------------------------------


def _sdk_caveat(d: dict[str, Any]) -> igcap.Caveat:
    return igcap.Caveat(
        type=d["t"], tools=d.get("tools"), agent=d.get("agent", ""),
        expiry=d.get("exp", 0), max_calls=d.get("max_calls", 0),
    )


def sdk_attenuate(token: str, step: dict[str, Any]) -> str:
    """One intentgate.attenuate() call described by `step` (JSON-able kwargs).

    `extra` is given as caveat dicts (wire names) and converted to SDK Caveat
    objects; `sdk_clock` pins the SDK's time.time() for expires_in_seconds.
    """
    kwargs = {k: v for k, v in step.items() if k != "sdk_clock"}
    if "extra" in kwargs:
        kwargs["extra"] = [_sdk_caveat(c) for c in kwargs["extra"]]
    saved = igcap._time
    if "sdk_clock" in step:
        clock = step["sdk_clock"]
        igcap._time = types.SimpleNamespace(time=lambda: float(clock))
    elif "expires_in_seconds" in step:
        raise AssertionError("expires_in_seconds needs sdk_clock for determinism")
    try:
        return intentgate.attenuate(token, **kwargs)
    finally:
        igcap._time = saved


def expected_new_caveats(step: dict[str, Any]) -> list[dict[str, Any]]:
    """What the SDK is documented to append for one call (computed here
    independently of the SDK, to cross-check it): tool_allow, tool_deny,
    max_calls, exp, then extra, each omitempty."""
    out: list[dict[str, Any]] = []
    if step.get("add_tools"):
        out.append({"t": "tool_allow", "tools": list(step["add_tools"])})
    if step.get("deny_tools"):
        out.append({"t": "tool_deny", "tools": list(step["deny_tools"])})
    if step.get("max_calls") is not None:
        out.append({"t": "max_calls", "max_calls": step["max_calls"]})
    if step.get("expires_at") is not None or step.get("expires_in_seconds") is not None:
        exp = step.get("expires_at")
        if exp is None:
            exp = step["sdk_clock"] + step["expires_in_seconds"]
        out.append({"t": "exp", "exp": exp})
    out.extend(step.get("extra") or [])
    return [caveat_canonical(c) for c in out]


def caveat_expect_form(c: dict[str, Any]) -> dict[str, Any]:
    """Parsed caveat in the vectors file: Go-canonical (omitempty) object."""
    return caveat_canonical(c)


# ---------------------------------------------------------------------------
# The vectors
# ---------------------------------------------------------------------------


def base_tokens() -> dict[str, str]:
    return {
        # agent_lock only: what `igctl mint --subject agent-alpha --tenant acme` gives.
        "plain": mint("plain", sub="agent-alpha", tenant="acme"),
        # igctl --tools: agent_lock + tool_allow.
        "tools": mint(
            "tools", sub="agent-beta",
            caveats=({"t": "tool_allow", "tools": ["read_invoice", "search", "send_email", "delete_file"]},),
        ),
        # igctl --ttl 24h: agent_lock + exp.
        "exp": mint("exp", sub="agent-gamma", tenant="tenant-a", iss="igctl-test", expiry=IAT + 86400),
        # nbf set, plus tool_deny and max_calls minted by the issuer.
        "nbf": mint(
            "nbf", sub="agent-delta", tenant="acme", nbf=IAT + 60,
            caveats=({"t": "tool_deny", "tools": ["drop_database"]}, {"t": "max_calls", "max_calls": 100}),
        ),
        # A step_up caveat (field the SDK does not model) minted by the issuer.
        "stepup": mint(
            "stepup", sub="agent-eps", tenant="acme",
            caveats=({"t": "step_up", "step_up_at": IAT - 30},),
        ),
    }


def with_unknown_fields(wire: str) -> str:
    """A Go-valid variant of `wire` carrying fields Go ignores on decode:
    an unknown top-level key and an unknown key inside caveat 0. Go's
    Verify re-marshals from the struct, so the signature stays valid."""
    doc = json.loads(base64.urlsafe_b64decode(wire + "=" * (-len(wire) % 4)))
    out: dict[str, Any] = {}
    for k, v in doc.items():
        if k == "sig":
            out["x_ext"] = {"k": "v", "n": 1}
        out[k] = v
    out["cav"][0]["x_note"] = "ignored by Go"
    return b64url(json.dumps(out, separators=(",", ":")).encode("ascii"))


def positive_specs(bases: dict[str, str]) -> list[dict[str, Any]]:
    ALL = ["read_invoice", "search", "send_email", "delete_file", "wire_money"]
    return [
        dict(name="allow_single", base="plain", desc="one tool_allow caveat",
             steps=[{"add_tools": ["read_invoice", "search"]}],
             allowed=["read_invoice", "search"], denied=["send_email", "Read_Invoice", "read_invoice "]),
        dict(name="deny_single", base="plain", desc="one tool_deny caveat",
             steps=[{"deny_tools": ["delete_file", "wire_money"]}],
             allowed=["read_invoice", "search", "send_email"], denied=["delete_file", "wire_money"]),
        dict(name="max_calls_5", base="plain", desc="max_calls caveat (informational in Check)",
             steps=[{"max_calls": 5}], allowed=ALL, denied=[]),
        dict(name="max_calls_zero_omitted", base="plain",
             desc="SDK quirk: max_calls=0 yields {\"t\":\"max_calls\"} (0 omitted); Check ignores it",
             steps=[{"max_calls": 0}], allowed=ALL, denied=[]),
        dict(name="exp_future", base="plain", desc="exp caveat still valid at now",
             steps=[{"expires_at": IAT + 7200}], allowed=ALL, denied=[]),
        dict(name="exp_past", base="plain", desc="exp caveat already expired at now (now >= exp)",
             steps=[{"expires_at": IAT + 1800}], allowed=[], denied=ALL),
        dict(name="exp_boundary", base="plain", desc="exp == now is expired (deny when now >= exp)",
             steps=[{"expires_at": NOW}], allowed=[], denied=["read_invoice"]),
        dict(name="exp_zero_omitted", base="plain",
             desc="SDK quirk: expires_at=0 yields {\"t\":\"exp\"}; Check denies (missing exp value)",
             steps=[{"expires_at": 0}], allowed=[], denied=["read_invoice", "search"]),
        dict(name="exp_in_seconds_pinned_clock", base="plain",
             desc="expires_in_seconds with the SDK clock pinned: exp = sdk_clock + 3600",
             steps=[{"expires_in_seconds": 3600, "sdk_clock": SDK_CLOCK}], allowed=ALL, denied=[]),
        dict(name="combo_all_kwargs", base="tools",
             desc="one call with every helper: appended in SDK order tool_allow, tool_deny, max_calls, exp",
             steps=[{"add_tools": ["search", "read_invoice"], "deny_tools": ["search"],
                     "max_calls": 3, "expires_at": IAT + 7200}],
             allowed=["read_invoice"], denied=["search", "send_email", "delete_file", "wire_money"]),
        dict(name="broader_child_cannot_widen", base="tools",
             desc="child tool_allow lists a tool the parent's tool_allow lacks; parent caveat still denies it",
             steps=[{"add_tools": ["read_invoice", "wire_money"]}],
             allowed=["read_invoice"], denied=["wire_money", "search"]),
        dict(name="extra_agent_lock_same", base="plain", desc="extra= agent_lock for the same subject",
             steps=[{"extra": [{"t": "agent_lock", "agent": "agent-alpha"}]}], allowed=ALL, denied=[]),
        dict(name="extra_agent_lock_other", base="plain",
             desc="extra= agent_lock for another agent: every call denied (agent is the token's sub)",
             steps=[{"extra": [{"t": "agent_lock", "agent": "agent-zeta"}]}], allowed=[], denied=ALL),
        dict(name="extra_unknown_type", base="plain",
             desc="extra= caveat of a type the gateway does not know: signature valid, Check denies",
             steps=[{"extra": [{"t": "geo_fence"}]}], allowed=[], denied=["read_invoice"]),
        dict(name="odd_tool_names", base="plain",
             desc="ASCII tool names with punctuation, duplicates and order preserved as given",
             steps=[{"add_tools": ["fs.read", "github/create_issue", "db:query", "a b", "fs.read",
                                   "quote\"d", "back\\slash"]}],
             allowed=["fs.read", "github/create_issue", "db:query", "a b", "quote\"d", "back\\slash"],
             denied=["fs", "db:query:x"]),
        dict(name="chain2_allow_then_deny", base="tools", desc="two successive attenuate() calls",
             steps=[{"add_tools": ["read_invoice", "search", "send_email"]}, {"deny_tools": ["send_email"]}],
             allowed=["read_invoice", "search"], denied=["send_email", "delete_file"]),
        dict(name="chain3_on_exp_base", base="exp",
             desc="base already carries agent_lock+exp; three SDK hops narrow tools, calls and expiry",
             steps=[{"add_tools": ["alpha", "beta", "gamma"]}, {"max_calls": 10},
                    {"deny_tools": ["gamma"], "expires_at": IAT + 3700}],
             allowed=["alpha", "beta"], denied=["gamma", "delta"]),
        dict(name="chain3_expired_by_last_hop", base="exp", now=IAT + 3700,
             desc="same chain evaluated at now == last exp: denied although base exp is later",
             steps=[{"add_tools": ["alpha", "beta", "gamma"]}, {"max_calls": 10},
                    {"deny_tools": ["gamma"], "expires_at": IAT + 3700}],
             allowed=[], denied=["alpha", "beta"]),
        dict(name="nbf_base_attenuated", base="nbf", desc="base with nbf, tool_deny and max_calls minted in",
             steps=[{"add_tools": ["report", "drop_database"], "max_calls": 7}],
             allowed=["report"], denied=["drop_database", "other"]),
        dict(name="nbf_not_yet_valid", base="nbf", now=IAT + 30, desc="same token evaluated before nbf",
             steps=[{"add_tools": ["report", "drop_database"], "max_calls": 7}],
             allowed=[], denied=["report"]),
        dict(name="stepup_copied_verbatim", base="stepup",
             desc="SDK copies a prior step_up caveat (field it does not model) unchanged",
             steps=[{"deny_tools": ["wire_money"]}], allowed=["search"], denied=["wire_money"]),
        dict(name="unknown_fields_preserved", base="plain", base_variant="unknown_fields",
             desc="base has an unknown top-level key and an unknown caveat key (Go ignores both); "
                  "the SDK copies them into the child; Go verification ignores them",
             steps=[{"add_tools": ["search"]}], allowed=["search"], denied=["read_invoice"]),
    ]


def build_positive(spec: dict[str, Any], bases: dict[str, str]) -> dict[str, Any]:
    base = bases[spec["base"]]
    if spec.get("base_variant") == "unknown_fields":
        base = with_unknown_fields(base)
    base_tok = go_decode_token(base)
    assert go_verify(base_tok, MASTER_KEY) is None, spec["name"]

    tok = base
    want_cavs = [caveat_canonical(c) for c in base_tok["cav"]]
    for step in spec["steps"]:
        tok = sdk_attenuate(tok, step)
        want_cavs += expected_new_caveats(step)

    t = go_decode_token(tok)
    err = go_verify(t, MASTER_KEY)
    assert err is None, f"{spec['name']}: SDK token fails Go verification: {err}"
    got_cavs = [caveat_canonical(c) for c in t["cav"]]
    assert got_cavs == want_cavs, f"{spec['name']}: caveats {got_cavs} != {want_cavs}"
    assert t["jti"] == base_tok["jti"] and t["root_jti"] == base_tok["root_jti"]

    now = spec.get("now", NOW)
    denied_reasons = {}
    for tool in spec["allowed"]:
        e = go_check(t, t["sub"], tool, now)
        assert e is None, f"{spec['name']}: {tool!r} expected allowed, got {e}"
    for tool in spec["denied"]:
        e = go_check(t, t["sub"], tool, now)
        assert e is not None, f"{spec['name']}: {tool!r} expected denied"
        denied_reasons[tool] = e

    sigs = hmac_chain(MASTER_KEY, t)
    return {
        "name": spec["name"],
        "description": spec["desc"],
        "base_token": base,
        "attenuations": spec["steps"],
        "token": tok,
        "expect": {
            "v": t["v"],
            "jti": t["jti"],
            "root_jti": t["root_jti"],
            "iss": t["iss"],
            "tenant": t["tenant"],
            "sub": t["sub"],
            "iat": t["iat"],
            "nbf": t["nbf"],
            "base_caveat_count": len(base_tok["cav"]),
            "caveats": [caveat_expect_form(c) for c in t["cav"]],
            "payload_canonical": go_marshal(payload_canonical(t)).decode("utf-8"),
            "caveats_canonical": [go_marshal(caveat_canonical(c)).decode("utf-8") for c in t["cav"]],
            "sig_chain": [b64url(s) for s in sigs],
            "sig": t["sig"],
            "now": now,
            "allowed_tools": spec["allowed"],
            "denied_tools": spec["denied"],
            "denied_reasons": denied_reasons,
        },
    }


def _reencode(doc: dict[str, Any]) -> str:
    return b64url(json.dumps(doc).encode("utf-8"))


def _wire_json(wire: str) -> dict[str, Any]:
    return json.loads(base64.urlsafe_b64decode(wire + "=" * (-len(wire) % 4)))


def negative_cases(positives: dict[str, dict[str, Any]], bases: dict[str, str]) -> list[dict[str, Any]]:
    out = []

    d = _wire_json(positives["chain3_on_exp_base"]["token"])
    del d["cav"][3]  # drop the SDK's max_calls hop, keep the final sig
    out.append(dict(name="tampered_caveat_removed",
                    description="chain3_on_exp_base with its max_calls caveat deleted",
                    token=_reencode(d)))

    d = _wire_json(positives["chain3_on_exp_base"]["token"])
    d["cav"] = d["cav"][:-2]  # strip the last two caveats (tool_deny+exp) but keep the final sig
    out.append(dict(name="tampered_caveats_truncated",
                    description="chain3_on_exp_base with the last two caveats cut off, final sig kept",
                    token=_reencode(d)))

    d = _wire_json(positives["allow_single"]["token"])
    d["cav"][1]["tools"][0] = "wire_money"
    out.append(dict(name="tampered_tool_renamed",
                    description="allow_single with read_invoice changed to wire_money in the SDK's tool_allow",
                    token=_reencode(d)))

    d = _wire_json(positives["allow_single"]["token"])
    d["tenant"] = "other-tenant"
    out.append(dict(name="tampered_tenant_pivot",
                    description="allow_single with tenant changed (tenant is in the signed payload)",
                    token=_reencode(d)))

    out.append(dict(name="wrong_master_key",
                    description="valid combo_all_kwargs token checked under a different master key",
                    token=positives["combo_all_kwargs"]["token"],
                    master_key_b64url_override=b64url(WRONG_MASTER_KEY)))

    # SDK incompatibilities: the SDK HMACs json.dumps(ensure_ascii=True) bytes, Go
    # re-marshals with raw UTF-8 and HTML escapes, so these children never verify.
    out.append(dict(name="sdk_non_ascii_tool_rejected",
                    description="SDK attenuation with a non-ASCII tool name: SDK signs \\u00e9, Go "
                                "re-marshals raw UTF-8, so the gateway rejects the child",
                    base_token=bases["plain"],
                    attenuations=[{"add_tools": ["r\u00e9sum\u00e9_lookup"]}],
                    token=sdk_attenuate(bases["plain"], {"add_tools": ["r\u00e9sum\u00e9_lookup"]})))
    out.append(dict(name="sdk_html_chars_tool_rejected",
                    description="SDK attenuation with '&' and '<' in a tool name: Go escapes them "
                                "(\\u0026, \\u003c), the SDK does not, so the gateway rejects the child",
                    base_token=bases["plain"],
                    attenuations=[{"add_tools": ["a&b", "x<y"]}],
                    token=sdk_attenuate(bases["plain"], {"add_tools": ["a&b", "x<y"]})))

    for n in out:
        n["expect_error"] = "signature"
        n["go_error"] = "signature mismatch"
    return out


def generate() -> dict[str, Any]:
    if intentgate.__version__ != SDK_VERSION:
        sys.stderr.write(f"error: need intentgate=={SDK_VERSION}, found {intentgate.__version__}\n")
        sys.exit(2)
    bases = base_tokens()
    positives = [build_positive(s, bases) for s in positive_specs(bases)]
    by_name = {c["name"]: c for c in positives}
    assert len(by_name) == len(positives)
    negatives = negative_cases(by_name, bases)
    doc = {
        "generator": GENERATOR,
        "sdk_version": SDK_VERSION,
        "schema_version": SCHEMA_VERSION,
        "master_key_b64url": b64url(MASTER_KEY),
        "notes": [
            "Cases with 'expect' must decode, verify under master_key_b64url and satisfy the caveat checks; "
            "cases with 'expect_error' must fail signature verification (under master_key_b64url_override "
            "when present).",
            "Caveat checks run as the gateway does: agent id = token sub, tool = each listed name, "
            "time = expect.now (unix seconds). max_calls is informational in the capability check.",
            "expect.caveats are Go-canonical (omitempty, unknown keys dropped); expect.caveats_canonical are "
            "the exact HMAC inputs; expect.sig_chain is [sig0 over payload_canonical, sig1, ..., sigN].",
            "denied_reasons are the Go gateway's Token.Check error strings (informative).",
        ],
        "cases": positives + negatives,
    }
    verify_doc(doc)
    return doc


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=True) + "\n"


# ---------------------------------------------------------------------------
# Independent verification of a vectors document
# ---------------------------------------------------------------------------


def verify_doc(doc: dict[str, Any]) -> int:
    key = b64url_decode_strict(doc["master_key_b64url"])
    n_pos = n_neg = 0
    for case in doc["cases"]:
        name = case["name"]
        if "expect" in case:
            exp = case["expect"]
            base = go_decode_token(case["base_token"])
            assert go_verify(base, key) is None, f"{name}: base token does not verify"
            t = go_decode_token(case["token"])
            err = go_verify(t, key)
            assert err is None, f"{name}: {err}"
            for f in ("v", "jti", "root_jti", "iss", "tenant", "sub", "iat", "nbf", "sig"):
                assert t[f] == exp[f], f"{name}: field {f}: {t[f]!r} != {exp[f]!r}"
            cavs = [caveat_canonical(c) for c in t["cav"]]
            assert cavs == exp["caveats"], f"{name}: caveats differ"
            assert [caveat_canonical(c) for c in base["cav"]] == cavs[: exp["base_caveat_count"]]
            # Recompute the chain by hand from the expect block's own strings.
            prev = hmac.new(key, exp["payload_canonical"].encode("utf-8"), hashlib.sha256).digest()
            chain = [prev]
            for cb in exp["caveats_canonical"]:
                prev = hmac.new(prev, cb.encode("utf-8"), hashlib.sha256).digest()
                chain.append(prev)
            assert [b64url(s) for s in chain] == exp["sig_chain"], f"{name}: sig_chain"
            assert exp["sig_chain"][-1] == exp["sig"] == t["sig"], f"{name}: final sig"
            # For ASCII-safe content, Go's compact marshal equals Python's compact dumps.
            for c, cb in zip(cavs, exp["caveats_canonical"]):
                assert json.dumps(c, separators=(",", ":")) == cb, f"{name}: canonical caveat"
            for tool in exp["allowed_tools"]:
                e = go_check(t, t["sub"], tool, exp["now"])
                assert e is None, f"{name}: {tool!r} should pass: {e}"
            for tool in exp["denied_tools"]:
                e = go_check(t, t["sub"], tool, exp["now"])
                assert e is not None and e == exp["denied_reasons"][tool], f"{name}: {tool!r} should fail"
            n_pos += 1
        else:
            assert case["expect_error"] == "signature", name
            k = b64url_decode_strict(case.get("master_key_b64url_override", doc["master_key_b64url"]))
            t = go_decode_token(case["token"])
            assert go_validate(t) is None, f"{name}: should be structurally valid"
            err = go_verify(t, k)
            assert err == "signature mismatch", f"{name}: expected signature mismatch, got {err}"
            if "master_key_b64url_override" in case:
                assert go_verify(t, key) is None, f"{name}: should verify under the real key"
            n_neg += 1
    return n_pos + n_neg


# ---------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="vectors file (default: %(default)s)")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 if the file differs from a regeneration")
    mode.add_argument("--verify", action="store_true", help="only re-verify the existing file")
    args = ap.parse_args(argv)

    if args.verify:
        n = verify_doc(json.loads(args.out.read_text(encoding="utf-8")))
        print(f"{args.out}: {n} cases verified")
        return 0

    text = render(generate())
    if args.check:
        if not args.out.exists():
            print(f"{args.out}: missing (run {GENERATOR} to create it)")
            return 1
        old = args.out.read_text(encoding="utf-8")
        if old == text:
            print(f"{args.out}: up to date")
            return 0
        diff = list(difflib.unified_diff(old.splitlines(), text.splitlines(), "committed", "regenerated",
                                         lineterm="", n=1))
        changed = sum(1 for ln in diff if ln[:1] in "+-" and not ln.startswith(("+++", "---")))
        print(f"{args.out}: STALE, {changed} changed line(s); first lines of the diff:")
        for ln in diff[:40]:
            print("  " + ln)
        try:
            old_names = {c["name"]: c for c in json.loads(old)["cases"]}
            new_names = {c["name"]: c for c in json.loads(text)["cases"]}
            for n in sorted(set(old_names) | set(new_names)):
                if old_names.get(n) != new_names.get(n):
                    tag = "added" if n not in old_names else "removed" if n not in new_names else "changed"
                    print(f"  case {n}: {tag}")
        except (ValueError, KeyError, TypeError):
            print("  (committed file is not a parseable vectors document)")
        return 1

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out} ({len(json.loads(text)['cases'])} cases)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Differential fuzzing of the request-head parser against h11: a seeded generator and the checks.

Used by tests/test_fuzz.py with a bounded count (seconds in CI) and, for long runs, from the
command line:

    python tests/fuzzing.py --count 2000000 --seed 7

A case is a request head from a small HTTP grammar, then zero to three byte mutations drawn from the
bytes that matter to framing (CR, LF, HTAB, SP, NUL, DEL, obs-text such as 0xA0 and 0x85, colon,
comma, quote). The checks: ``parse_head`` never raises anything but HTTPError; it gives the same
verdict for the whole bytes, byte by byte and in random splits; it never accepts what h11 rejects
(except the differences ``explained`` documents); and when both accept, they agree on the method
and the body framing (the smuggling question).
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import h11

from prefork.http.errors import HTTPError
from prefork.http.parser import Limits, parse_head

LIMITS = Limits(max_line=4094, max_fields=100, max_field_size=8190)
METHODS = [b"GET", b"POST", b"HEAD", b"PUT", b"OPTIONS", b"DELETE", b"PATCH", b"G-T", b"get", b"CONNECT"]
TARGETS = [
    b"/",
    b"/a/b?c=d",
    b"*",
    b"http://example.org/x",
    b"https://h:8443/",
    b"/%41",
    b"//x",
    b"/a#f",
    b"http://:80/x",
    b"example.org:443",
]
VERSIONS = [b"HTTP/1.1", b"HTTP/1.0", b"HTTP/1.2", b"HTTP/2.0", b"http/1.1", b"HTTP/1.10"]
FIELDS = [
    b"Host: example.org",
    b"Host: h:8000",
    b"Host: ",
    b"Host: :80",
    b"Host: [::1]:80",
    b"Content-Length: 5",
    b"Content-Length: 0",
    b"Content-Length: 05",
    b"Content-Length: 5, 5",
    b"Content-Length: +5",
    b"Content-Length: 99999999999999999999",
    b"Transfer-Encoding: chunked",
    b"Transfer-Encoding: gzip, chunked",
    b"Transfer-Encoding: chunked, gzip",
    b"Transfer-Encoding: identity",
    b"Transfer-Encoding: CHUNKED",
    b"Transfer-Encoding:chunked",
    b"Connection: close",
    b"Connection: keep-alive, Upgrade",
    b"Expect: 100-continue",
    b"Content-Type: text/plain",
    b"X-A: b",
    b"X-Empty:",
    b"x-under_score: 1",
    b"Cookie: a=b; c=d",
]
INTERESTING = [b"\r", b"\n", b"\t", b" ", b"\x00", b"\x7f", b"\xa0", b"\x85", b":", b",", b'"', b"\r\n", b"a"]


def explained(raw: bytes) -> bytes:
    """``raw`` with the documented differences undone; prefork may accept what h11 refuses only when
    h11 accepts this version. The differences, neither of which touches framing:
    - empty lines before the request line: RFC 9112 §2.2 asks servers to ignore at least one (we
      ignore up to 8); h11 refuses them;
    - obs-text (bytes 0x80-0xFF) in the request-target: raw UTF-8 paths from clients that do not
      percent-encode, which nginx passes on as they came; h11 refuses them.
    """
    raw = raw.lstrip(b"\r\n") if raw.startswith(b"\r\n") else raw
    line, sep, rest = raw.partition(b"\r\n")
    line = b"".join(b"%%%02X" % byte if byte >= 0x80 else bytes([byte]) for byte in line)
    return line + sep + rest


def generate(rng: random.Random) -> bytes:
    line = b" ".join([rng.choice(METHODS), rng.choice(TARGETS), rng.choice(VERSIONS)])
    fields = rng.sample(FIELDS, rng.randint(0, 5))
    if rng.random() < 0.8:
        fields.insert(rng.randint(0, len(fields)), b"Host: example.org")
    raw = bytearray(b"\r\n".join([line, *fields]) + b"\r\n\r\n")
    for _ in range(rng.choice([0, 0, 1, 1, 2, 3])):
        pos = rng.randrange(len(raw) + 1)
        kind = rng.random()
        if kind < 0.4:
            raw[pos:pos] = rng.choice(INTERESTING)
        elif kind < 0.7 and pos < len(raw):
            del raw[pos]
        elif pos < len(raw):
            raw[pos : pos + 1] = rng.choice(INTERESTING)
    return bytes(raw)


def prefork_verdict(raw: bytes, sizes: list[int] | None = None):
    """("accept", head) | ("reject", status) | ("incomplete", None), feeding like a connection."""
    buf = b""
    scanned = pos = 0
    try:
        for size in [*(sizes or []), len(raw)]:
            buf += raw[pos : pos + size]
            pos += size
            parsed = parse_head(buf, LIMITS, scanned)
            if parsed is not None:
                return "accept", parsed[0]
            scanned = len(buf)
    except HTTPError as exc:
        return "reject", int(exc.status[:3])
    return "incomplete", None


def h11_verdict(raw: bytes):
    conn = h11.Connection(h11.SERVER)
    try:
        conn.receive_data(raw)
        event = conn.next_event()
    except h11.RemoteProtocolError:
        return "reject", None
    if isinstance(event, h11.Request):
        return "accept", event
    return "incomplete", None


def framing_of_h11(request: h11.Request) -> tuple[bool, int]:
    headers = dict(request.headers)
    if b"transfer-encoding" in headers:
        return True, 0
    return False, int(headers.get(b"content-length", b"0"))


def check(raw: bytes, rng: random.Random) -> str | None:
    """The first problem with ``raw``, or None."""
    whole = prefork_verdict(raw)
    splits = [[1] * len(raw)] + [
        sorted(rng.sample(range(1, len(raw)), min(3, len(raw) - 1))) for _ in range(2) if len(raw) > 3
    ]
    for cuts in splits:
        sizes = [b - a for a, b in zip([0, *cuts], cuts, strict=False)] if cuts and cuts[0] != 1 else cuts
        other = prefork_verdict(raw, sizes)
        if (other[0], other[1] if other[0] == "reject" else None) != (
            whole[0],
            whole[1] if whole[0] == "reject" else None,
        ):
            return f"split-dependent verdict: {whole[0]} {whole[1]!r} vs {other[0]} {other[1]!r}"
    theirs = h11_verdict(raw)
    if whole[0] == "accept" and theirs[0] == "reject":
        theirs = h11_verdict(explained(raw))
        if theirs[0] != "accept":
            return "prefork accepts what h11 rejects"
    if whole[0] == "accept" and theirs[0] == "accept":
        head, request = whole[1], theirs[1]
        if head.method.encode() != request.method:
            return "methods differ"
        if (head.chunked, head.content_length) != framing_of_h11(request):
            return f"framing differs: prefork {(head.chunked, head.content_length)} h11 {framing_of_h11(request)}"
    return None


def run(count: int, seed: int) -> list[tuple[bytes, str]]:
    rng = random.Random(seed)
    problems = []
    for _ in range(count):
        raw = generate(rng)
        try:
            problem = check(raw, rng)
        except Exception as exc:  # noqa: BLE001 - anything but HTTPError from the parser is a finding
            problem = f"crash: {exc!r}"
        if problem:
            problems.append((raw, problem))
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description="Differential fuzzing of parse_head against h11")
    parser.add_argument("--count", type=int, default=100000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    problems = run(args.count, args.seed)
    for raw, problem in problems[:50]:
        print(f"{problem}: {raw!r}")
    print(f"{len(problems)} problems in {args.count} cases (seed {args.seed})")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()

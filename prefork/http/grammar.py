"""Precompiled RFC 9110/9112 grammar shared by the parser, the chunked decoder and the response side.

Each pattern is meant for ``fullmatch`` unless its name says otherwise.
"""

import re

# RFC 9110 §5.6.2: token = 1*tchar
TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
# RFC 9110 §5.5: field-value characters: VCHAR, SP, HTAB and obs-text; no CR, LF, NUL or other controls.
FIELD_VALUE = r"[^\x00-\x08\x0a-\x1f\x7f]*"

# RFC 9112 §3: request-line = method SP request-target SP HTTP-version, exactly one SP each.
REQUEST_LINE_RE = re.compile(rf"({TOKEN}) ([^\x00-\x20\x7f]+) (HTTP/[0-9]\.[0-9])")
# Anything that starts like "HTTP/x.y" but is not one of ours is a version problem (505), not syntax.
VERSION_LIKE_RE = re.compile(r".* HTTP/[0-9]\.[0-9]")
# Bytes that cannot occur in a method: lets garbage (e.g. TLS to a plain port) fail before CRLF arrives.
NOT_TCHAR_BYTES_RE = re.compile(rb"[^!#$%&'*+\-.^_`|~0-9A-Za-z]")

# RFC 9112 §5: field-line = field-name ":" OWS field-value OWS. No whitespace before the colon,
# no obs-fold (a line starting with SP/HTAB fails the name), no CR/LF/NUL/controls except HTAB.
FIELD_LINE_RE = re.compile(rf"({TOKEN}):[ \t]*({FIELD_VALUE})")

# The parser checks a field value with FIELD_VALUE_RE only when str.isprintable refuses it (HTAB,
# obs-text), and a field name with TOKEN_RE only the first time it sees it.
FIELD_VALUE_RE = re.compile(FIELD_VALUE)
TOKEN_RE = re.compile(TOKEN)

# RFC 9110 §7.2 / RFC 3986 §3.2.2: Host = uri-host [ ":" port ]. The host name must not be empty
# (an empty Host field value is handled before this pattern).
HOST_RE = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]+)(?::[0-9]*)?")

# A CR not followed by LF, or an LF not preceded by CR (search, not fullmatch): RFC 9112 §2.2 lets a
# server refuse bare CR/LF; we do, at once, even before the head is complete.
BARE_EOL_RE = re.compile(rb"\r(?!\n)|(?<!\r)\n")

# RFC 9112 §3.2.2: absolute-form; only http and https make sense for a WSGI origin server.
ABSOLUTE_FORM_RE = re.compile(r"([Hh][Tt][Tt][Pp][Ss]?)://([^/?#]*)([^?#]*)(?:\?([^#]*))?")

# RFC 9110 §8.6: Content-Length = 1*DIGIT (ASCII digits only; str.isdigit would accept others).
CONTENT_LENGTH_RE = re.compile(r"[0-9]{1,18}")

# RFC 9112 §7.1.1: chunk-size [ chunk-ext ] CRLF; chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS val ] )
_QUOTED = r'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
_BTOKEN = TOKEN.encode()
CHUNK_LINE_RE = re.compile(
    rb"([0-9A-Fa-f]{1,16})(?:[ \t]*;[ \t]*"
    + _BTOKEN
    + rb"(?:[ \t]*=[ \t]*(?:"
    + _BTOKEN
    + rb"|"
    + _QUOTED.encode()
    + rb"))?)*"
)

# What a WSGI application may put in a response header block (checked as one string, see response.py).
RESPONSE_HEADER_BLOCK_RE = re.compile(rf"(?:{TOKEN}: {FIELD_VALUE}\r\n)*")
# PEP 3333 status: "200 OK"; a missing reason phrase is tolerated.
STATUS_RE = re.compile(r"([1-9][0-9][0-9])(?: [^\x00-\x08\x0a-\x1f\x7f]*)?")

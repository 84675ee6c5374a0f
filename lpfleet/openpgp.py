"""Just enough OpenPGP to check an apt signing key's fingerprint on the controller: pure, no gpg needed.

An apt repository key is trusted only when the downloaded file holds exactly one primary key and that key's
fingerprint is the one pinned in group data. A key file that also carries a second primary key is refused:
apt would trust both. The dearmored bytes are what `gpg --dearmor` writes, so the keyring file we install is
byte for byte the key we checked.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

_ARMOR_BEGIN = re.compile(rb"-----BEGIN PGP (PUBLIC KEY BLOCK|PRIVATE KEY BLOCK|SIGNATURE|MESSAGE)-----")
_PUBLIC_KEY, _SECRET_KEY = 6, 5
_FINGERPRINT = re.compile(r"[0-9A-F]{40}|[0-9A-F]{64}")


class OpenPGPError(ValueError):
    """The data is not an OpenPGP key we can read."""


@dataclass(frozen=True)
class KeyVerdict:
    """The result of checking a downloaded key against the pinned fingerprint."""

    ok: bool
    fingerprints: tuple[str, ...]  # every primary key in the file
    dearmored: bytes  # what to install as the keyring (binary, as `gpg --dearmor` writes it)
    problem: str | None = None


def normalize_fingerprint(value: str) -> str:
    """Upper-case hex without spaces; a v4 (40 digits) or v6 (64 digits) fingerprint, else OpenPGPError."""
    cleaned = re.sub(r"\s+", "", value).upper().removeprefix("0X")
    if not _FINGERPRINT.fullmatch(cleaned):
        raise OpenPGPError(f"{value!r} is not a full key fingerprint (40 or 64 hex digits; key ids are not enough)")
    return cleaned


def _crc24(data: bytes) -> int:
    crc = 0xB704CE
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF


def dearmor(data: bytes) -> bytes:
    """ASCII-armored key -> binary packets (checksum verified); binary input is returned as it is."""
    match = _ARMOR_BEGIN.search(data)
    if not match:
        if data and data[0] & 0x80:
            return data
        raise OpenPGPError("neither an ASCII-armored nor a binary OpenPGP key")
    lines = data[match.end():].decode("ascii", errors="replace").splitlines()
    body: list[str] = []
    checksum: str | None = None
    in_headers = True
    ended = False
    for line in lines[1:] if lines and not lines[0].strip() else lines:
        line = line.strip()
        if line.startswith("-----END PGP"):
            ended = True
            break
        if in_headers:
            if not line:
                in_headers = False
                continue
            if ":" in line:
                continue  # armor header such as "Version: GnuPG v2"
            in_headers = False
        if line.startswith("=") and len(line) == 5:
            checksum = line[1:]
            continue
        if line:
            body.append(line)
    if not ended:
        raise OpenPGPError("armored key has no END line (truncated download?)")
    try:
        binary = base64.b64decode("".join(body), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise OpenPGPError(f"armored key is not valid base64: {exc}") from exc
    if checksum is not None:
        try:
            expected = int.from_bytes(base64.b64decode(checksum, validate=True), "big")
        except (binascii.Error, ValueError) as exc:
            raise OpenPGPError("armor checksum line is not base64") from exc
        if _crc24(binary) != expected:
            raise OpenPGPError("armor checksum mismatch (corrupted download?)")
    if not binary:
        raise OpenPGPError("armored block is empty")
    return binary


def packets(binary: bytes) -> list[tuple[int, bytes]]:
    """(tag, body) of every packet; OpenPGPError on anything malformed."""
    result = []
    pos = 0
    while pos < len(binary):
        header = binary[pos]
        if not header & 0x80:
            raise OpenPGPError(f"byte {pos} is not a packet header")
        pos += 1
        if header & 0x40:  # new format
            tag = header & 0x3F
            if pos >= len(binary):
                raise OpenPGPError("truncated packet header")
            first = binary[pos]
            if first < 192:
                length, pos = first, pos + 1
            elif first < 224:
                if pos + 1 >= len(binary):
                    raise OpenPGPError("truncated packet header")
                length, pos = ((first - 192) << 8) + binary[pos + 1] + 192, pos + 2
            elif first == 255:
                length, pos = int.from_bytes(binary[pos + 1 : pos + 5], "big"), pos + 5
            else:
                raise OpenPGPError("partial body lengths do not occur in keys")
        else:  # old format
            tag = (header >> 2) & 0x0F
            kind = header & 0x03
            if kind == 3:
                length = len(binary) - pos
            else:
                size = (1, 2, 4)[kind]
                length, pos = int.from_bytes(binary[pos : pos + size], "big"), pos + size
        if pos + length > len(binary):
            raise OpenPGPError("truncated packet (download cut short?)")
        result.append((tag, binary[pos : pos + length]))
        pos += length
    return result


def key_fingerprint(body: bytes) -> str:
    """Fingerprint of one public-key packet body (v4: SHA-1, v5/v6: SHA-256)."""
    if not body:
        raise OpenPGPError("empty key packet")
    version = body[0]
    if version == 4:
        digest = hashlib.sha1(b"\x99" + len(body).to_bytes(2, "big") + body).hexdigest()
    elif version == 5:
        digest = hashlib.sha256(b"\x9a" + len(body).to_bytes(4, "big") + body).hexdigest()
    elif version == 6:
        digest = hashlib.sha256(b"\x9b" + len(body).to_bytes(4, "big") + body).hexdigest()
    else:
        raise OpenPGPError(f"unsupported key packet version {version}")
    return digest.upper()


def primary_fingerprints(binary: bytes) -> tuple[str, ...]:
    """The fingerprint of every primary key in a binary keyring (subkeys are not listed)."""
    found = []
    for tag, body in packets(binary):
        if tag == _SECRET_KEY:
            raise OpenPGPError("the file holds a secret key, not a public key")
        if tag == _PUBLIC_KEY:
            found.append(key_fingerprint(body))
    return tuple(found)


def check_key(data: bytes, pinned_fingerprint: str) -> KeyVerdict:
    """Does this downloaded key file hold exactly the pinned key? Never raises on bad data: it says why."""
    pinned = normalize_fingerprint(pinned_fingerprint)
    try:
        binary = dearmor(data)
        fingerprints = primary_fingerprints(binary)
    except OpenPGPError as exc:
        return KeyVerdict(ok=False, fingerprints=(), dearmored=b"", problem=str(exc))
    if not fingerprints:
        return KeyVerdict(False, fingerprints, binary, "the file holds no public key")
    if fingerprints != (pinned,):
        if pinned in fingerprints:
            problem = f"the file holds {len(fingerprints)} keys ({', '.join(fingerprints)}), not only the pinned one"
        else:
            problem = f"key fingerprint {', '.join(fingerprints)} is not the pinned {pinned}"
        return KeyVerdict(False, fingerprints, binary, problem)
    return KeyVerdict(True, fingerprints, binary)

"""Writing files that hold secrets (aiModels.json with BYOC tokens): atomic, private, diffs masked.

pyinfra's files.put / files.template print the file's content in `--diff` and leave the file
world-readable until a later chmod; `secret_file` does neither.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import posixpath
import secrets
from collections.abc import Sequence

from pyinfra import host, logger, state
from pyinfra.api import (
    HiddenValue,
    OperationTypeError,
    QuoteString,
    StringCommand,
    operation,
)
from pyinfra.api.util import format_text
from pyinfra.operations.util.files import generate_color_diff

from lpfleet.facts.batch import known_fact
from lpfleet.facts.files import FileDigest, MaskedFileContents
from lpfleet.operations.plan_notes import ENV as PLAN_NOTES_ENV
from lpfleet.operations.plan_notes import note
from lpfleet.secrets import mask, reveal


def hidden(value: object) -> HiddenValue | None:
    """pyinfra's `HiddenValue` for a secret (str or SecretStr; pyinfra prints it as *MASKED*); None stays None."""
    plain = reveal(value)  # type: ignore[arg-type]
    return None if plain is None else HiddenValue(plain)


#: Unique per controller run: two runs on one node never share a staging file name.
RUN_TAG = f"lpfleet-{os.getpid()}-{secrets.token_hex(3)}"


def staging_path(dest: str) -> str:
    """The staging file beside `dest` (same filesystem, so the final mv is an atomic rename), unique per run."""
    return posixpath.join(posixpath.dirname(dest), f".{posixpath.basename(dest)}.{RUN_TAG}")


def _octal(mode: str | int) -> str:
    value = int(str(mode), 8) if not isinstance(mode, int) else mode
    return format(value, "o")


# Writes stdin (base64: pyinfra ends every stdin line with a newline) into a unique 0600 temp file beside the
# destination, created under umask 077 (so the bytes are never readable by others, also under sudo: pyinfra's
# own upload would pass them through a predictable 0644 file in /tmp), synced, then renamed over it.
_STDIN_WRITE = (
    'd=$(dirname "$1") && mkdir -p "$d" && umask 077 && '
    't=$(mktemp "$d/.$(basename "$1").lpfleet-XXXXXXXX") && '
    '{ base64 -d > "$t" && { [ -z "$2" ] || chown "$2" "$t"; } && chmod "$3" "$t" && '
    '{ sync "$t" 2>/dev/null || true; } && mv -f "$t" "$1"; } || { rm -f "$t"; exit 1; }'
)


def stdin_write(dest: str, data: bytes, mode: str, owner: str = "") -> StringCommand:
    """Write `data` to `dest` atomically with the bytes on the command's stdin, never in its argv or /tmp."""
    import base64

    return StringCommand("sh", "-c", QuoteString(_STDIN_WRITE), "lpfleet-write", QuoteString(dest),
                         QuoteString(owner), QuoteString(mode), _stdin=base64.b64encode(data).decode("ascii"))


def planning_notes() -> bool:
    """`lpfleet plan` is recording (a dry run with LPFLEET_PLAN_NOTES set)."""
    return bool(os.environ.get(PLAN_NOTES_ENV)) and not state.is_executing


@operation()
def secret_file(
    dest: str,
    content: object,
    mode: str = "600",
    user: str | None = None,
    group: str | None = None,
    secrets: Sequence[object] = (),
):
    """
    Write a file that holds secrets: atomically (temp file in the same folder + mv), private from the
    first byte, and with secret values masked in any diff pyinfra shows.

    + dest: path of the file on the node; its folder is created when missing
    + content: the file's text as a ``pyinfra.api.HiddenValue`` (so pyinfra never prints it)
    + mode: octal mode of the file (default 600)
    + user: owner of the file (default: the connecting user)
    + group: group of the file
    + secrets: ``HiddenValue`` s to mask in diffs besides JSON ``"token"`` values, which are always masked

    No change (``host.noop``) when the file already has this content (compared by sha256 on the node,
    nothing read back), mode and owner.
    """
    from pyinfra.api import HiddenValue

    if not isinstance(content, HiddenValue):
        raise OperationTypeError("secret_file: content must be a HiddenValue (a plain str would be printed)")
    text = content.unmask()
    data = text.encode()
    masks = [s.unmask() if isinstance(s, HiddenValue) else str(s) for s in secrets]
    want_mode = _octal(mode)
    want_sha = hashlib.sha256(data).hexdigest()
    current = known_fact(host, FileDigest, path=dest)

    if current is not None and current.sha256 == want_sha:
        changed = False
        if (user and current.user != user) or (group and current.group != group):
            yield StringCommand("chown", QuoteString(f"{user or current.user}:{group or current.group}"), QuoteString(dest))
            changed = True
        if current.mode != want_mode:
            yield StringCommand("chmod", want_mode, QuoteString(dest))
            changed = True
        if not changed:
            host.noop(f"{dest} is up to date")
        return

    if planning_notes():
        old = host.get_fact(MaskedFileContents, path=dest) if current is not None else []
        old_lines = [mask(line, masks) for line in old or []]
        new_lines = mask(text, masks).splitlines()
        diff = list(difflib.unified_diff(old_lines, new_lines, dest, dest, lineterm="", n=1))[2:]
        note(f"{'modify' if current is not None else 'create'} {dest} (secrets masked)", diff)

    if state.config.DIFF:
        old = host.get_fact(MaskedFileContents, path=dest) if current is not None else []
        old_lines = [mask(line, masks) + "\n" for line in old or []]
        new_lines = [line + "\n" for line in mask(text, masks).splitlines()]
        verb = "modify" if current is not None else "create"
        host.log(f"Will {verb} {format_text(dest, bold=True)} (secrets masked)", logger.info)
        for line in generate_color_diff(old_lines, new_lines):
            logger.info("  %s", line)
        logger.info("")

    owner = (f"{user or ''}:{group or ''}" if user else f":{group}") if (user or group) else ""
    yield stdin_write(dest, data, want_mode, owner)


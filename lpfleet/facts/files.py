"""Facts about files that may hold secrets: a digest instead of the content, and a masked view for diffs."""

from __future__ import annotations

from dataclasses import dataclass

from pyinfra.api import FactBase, QuoteString, StringCommand

#: sed expression replacing every JSON "token" value (any key case) with "***" on the node, so a
#: token never crosses the connection into pyinfra's fact output (printed with -vvv).
_MASK_TOKENS_SED = r's/("[Tt][Oo][Kk][Ee][Nn]"[[:space:]]*:[[:space:]]*)"([^"\\]|\\.)*"/\1"***"/g'


@dataclass(frozen=True)
class FileDigestInfo:
    mode: str  # octal, as stat prints it ("600")
    user: str
    group: str
    sha256: str


class FileDigest(FactBase[FileDigestInfo | None]):
    """Mode, owner and sha256 of a regular file in one round-trip; None when there is no such file.

    Compares content without reading it back: the file's bytes never leave the node.
    """

    def command(self, path: str) -> StringCommand:
        quoted = QuoteString(path)
        return StringCommand(
            "if", "[", "-f", quoted, "];", "then",
            "stat", "-L", "-c", "'%a %U %G'", quoted, "&&", "sha256sum", "<", quoted, ";",
            "fi",
        )

    def process(self, output: list[str]) -> FileDigestInfo | None:
        lines = [line.strip() for line in output if line.strip()]
        if len(lines) < 2:
            return None
        mode, user, group = lines[0].split()
        return FileDigestInfo(mode=mode, user=user, group=group, sha256=lines[1].split()[0])


class MaskedFileContents(FactBase[list[str]]):
    """A file's lines with every JSON "token" value replaced by "***" on the node; None when absent.

    Only for showing a diff (`--diff`): the masking happens before the content is sent back.
    """

    def command(self, path: str) -> StringCommand:
        quoted = QuoteString(path)
        return StringCommand(
            "if", "[", "-f", quoted, "];", "then", "sed", "-E", QuoteString(_MASK_TOKENS_SED), quoted, ";", "fi"
        )

    def process(self, output: list[str]) -> list[str]:
        return list(output)

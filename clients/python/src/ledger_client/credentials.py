"""A client's own entry in its credentials file (PROTOCOL.md, "Credentials files").

One client per line, ``CLIENT_ID ROLE SECRET``; blank lines and ``#`` comments are ignored.
A server's store (``CLIENT_ID ROLE hmac-sha256 SALT MAC``: hashes, no secret) is refused with a
message saying so. The file must not be readable by group or others. Which file: the ``path``
given, else the ``LEDGER_CREDENTIALS`` environment variable when set and not empty, else
``./data/admin.credentials`` (the admin's file a first ``ledgerd`` start writes). Which entry: the ``client_id`` given, else the first ``admin``
entry, else the first entry.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Union

from .errors import InvalidRequest

CREDENTIALS_FILE_LEN_BYTES_MAX = 1024 * 1024
CREDENTIALS_ENTRIES_MAX = 1024
ROLES = ("read", "transact", "admin")


@dataclass(frozen=True)
class Credentials:
    """A client id and its secret (never shown by ``repr``)."""

    client_id: str
    secret: str = field(repr=False)
    role: str = "admin"


def load_credentials(
    path: Union[str, "os.PathLike[str]", None] = None, client_id: Optional[str] = None
) -> Credentials:
    """The entry this client uses, read from its credentials file (see the module's doc)."""
    if path is None:
        path = os.environ.get("LEDGER_CREDENTIALS") or "data/admin.credentials"
    file = Path(path)
    try:
        info = file.stat()
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise InvalidRequest(
                f"{file}: readable by group or others; run `chmod 600 {file}`"
            )
        if info.st_size > CREDENTIALS_FILE_LEN_BYTES_MAX:
            raise InvalidRequest(f"{file}: larger than 1 MiB")
        text = file.read_bytes().decode("ascii")
    except OSError as error:
        raise InvalidRequest(f"{file}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise InvalidRequest(f"{file}: not ASCII") from None
    entries: List[Credentials] = []
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r").strip(" \t")
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) == 5 and fields[2] == "hmac-sha256":
            raise InvalidRequest(
                f"{file}:{number}: a hash, not a secret (this is a server's credentials store);"
                " a client needs its own file with the secret (ledgerd writes the admin's to"
                " admin.credentials next to its store)"
            )
        if len(fields) != 3:
            raise InvalidRequest(f"{file}:{number}: expected CLIENT_ID ROLE SECRET")
        if fields[1] not in ROLES:
            raise InvalidRequest(f"{file}:{number}: the role is not read, transact or admin")
        entries.append(Credentials(fields[0], fields[2], fields[1]))
    if not 1 <= len(entries) <= CREDENTIALS_ENTRIES_MAX:
        raise InvalidRequest(f"{file}: {len(entries)} entries, not 1..=1024")
    if client_id is not None:
        for entry in entries:
            if entry.client_id == client_id:
                return entry
        raise InvalidRequest(f"{file}: no entry for client {client_id!r}")
    admins = [entry for entry in entries if entry.role == "admin"]
    return admins[0] if admins else entries[0]

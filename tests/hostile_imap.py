"""A small IMAP server on 127.0.0.1 that misbehaves on purpose (plaintext, one thread per client).

Dovecot (tests/imap_server.py) is the real server; this one says what a real one never would:
it echoes the password in its refusal, accepts only a password exactly as typed, ... Each
behaviour is a constructor argument, so a test states the hostility it needs."""

from __future__ import annotations

import socket
import threading


class HostileImapServer:
    def __init__(
        self,
        password: str,
        *,
        echo_password: bool = False,
        folders: dict[bytes, tuple[bytes, list[bytes]]] | None = None,
        nil_size: set[int] = frozenset(),
        garbage_fetch: set[int] = frozenset(),
        uidvalidity: str | None = "7",
        trickle: set[int] = frozenset(),
        huge_literal: dict[int, int] | None = None,
        garbage_list: bool = False,
    ) -> None:
        """``folders``: raw (modified UTF-7) name -> (flags, messages; UID = position + 1).
        ``nil_size``: UIDs whose RFC822.SIZE is NIL; ``garbage_fetch``: UIDs answered with an
        unparseable FETCH line (``* N FETCH )))(((``) whenever they are fetched."""
        self.password = password
        self.echo_password = echo_password
        self.folders = folders or {}
        self.nil_size = set(nil_size)
        self.garbage_fetch = set(garbage_fetch)
        self.uidvalidity = uidvalidity  # None: not sent at all
        self.trickle = set(trickle)  # UIDs whose body comes one byte every 0.3 s
        self.huge_literal = huge_literal or {}  # UID -> bytes of the body literal (its size claims the real one)
        self.garbage_list = garbage_list  # LIST answered with a line imapclient cannot parse
        self.logins: list[str] = []  # every password a client sent, as received
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(8)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> HostileImapServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._sock.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _uid_command(self, tag: str, args: str, selected: bytes, send) -> None:
        messages = self.folders.get(selected, (b"", []))[1]
        sub, _, rest = args.partition(" ")
        if sub.upper() == "SEARCH":
            uids = " ".join(str(i + 1) for i in range(len(messages)))
            send(f"* SEARCH {uids}\r\n{tag} OK done\r\n".encode())
            return
        wanted_set, _, items = rest.partition(" ")
        wanted = set()
        for part in wanted_set.split(","):
            lo, _, hi = part.partition(":")
            hi = hi or lo
            last = len(messages) if hi == "*" else int(hi)
            wanted.update(range(int(lo), last + 1))
        out = b""
        for uid in sorted(u for u in wanted if 1 <= u <= len(messages)):
            if uid in self.garbage_fetch:
                out += f"* {uid} FETCH )))(((\r\n".encode()
            elif "RFC822.SIZE" in items.upper():
                size = "NIL" if uid in self.nil_size else str(len(messages[uid - 1]))
                out += f"* {uid} FETCH (UID {uid} RFC822.SIZE {size})\r\n".encode()
            elif uid in self.huge_literal:
                send(out + f"* {uid} FETCH (UID {uid} BODY[] {{{self.huge_literal[uid]}}}\r\n".encode())
                out = b""
                block = b"x" * (1 << 16)
                left = self.huge_literal[uid]
                while left > 0 and not self._stop.is_set():
                    send(block[: min(left, len(block))])
                    left -= len(block)
                out += b")\r\n"
            elif uid in self.trickle:
                body = messages[uid - 1]
                send(out + f"* {uid} FETCH (UID {uid} BODY[] {{{len(body)}}}\r\n".encode())
                out = b""
                for byte in body:
                    if self._stop.wait(0.3):
                        return
                    send(bytes([byte]))
                out += b")\r\n"
            else:
                body = messages[uid - 1]
                out += f"* {uid} FETCH (UID {uid} BODY[] {{{len(body)}}}\r\n".encode() + body + b")\r\n"
        send(out + f"{tag} OK done\r\n".encode())

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        reader = conn.makefile("rb")
        send = conn.sendall
        selected = b""
        try:
            send(b"* OK [CAPABILITY IMAP4rev1 SPECIAL-USE] hostile test server ready\r\n")
            while line := reader.readline():
                tag, _, rest = line.decode("utf-8", "replace").rstrip("\r\n").partition(" ")
                command, _, args = rest.partition(" ")
                command = command.upper()
                if command == "CAPABILITY":
                    send(f"* CAPABILITY IMAP4rev1 SPECIAL-USE\r\n{tag} OK done\r\n".encode())
                elif command == "LOGIN":
                    _user, password = _two_strings(args)
                    self.logins.append(password)
                    if password == self.password:
                        send(f"{tag} OK logged in\r\n".encode())
                    elif self.echo_password:
                        send(f"{tag} NO [AUTHENTICATIONFAILED] wrong password {password}\r\n".encode())
                    else:
                        send(f"{tag} NO [AUTHENTICATIONFAILED] Authentication failed.\r\n".encode())
                elif command == "LIST" and self.garbage_list:
                    send(f"* LIST )))(((\r\n{tag} OK done\r\n".encode())
                elif command == "LIST":
                    listing = self.folders or {b"INBOX": (b"", []), b"Sent": (b"\\Sent", [])}
                    lines = b"".join(
                        b"* LIST (\\HasNoChildren" + (b" " + flags if flags else b"") + b') "/" ' + name + b"\r\n"
                        for name, (flags, _) in listing.items()
                    )
                    send(lines + f"{tag} OK done\r\n".encode())
                elif command in ("SELECT", "EXAMINE"):
                    selected = args.strip().strip('"').encode()
                    count = len(self.folders.get(selected, (b"", []))[1])
                    validity = f"* OK [UIDVALIDITY {self.uidvalidity}] ok\r\n" if self.uidvalidity else ""
                    send(
                        f"* {count} EXISTS\r\n{validity}* OK [UIDNEXT {count + 1}] ok\r\n"
                        f"{tag} OK [READ-ONLY] selected\r\n".encode()
                    )
                elif command == "UID":
                    self._uid_command(tag, args, selected, send)
                elif command == "LOGOUT":
                    send(f"* BYE bye\r\n{tag} OK done\r\n".encode())
                    return
                else:
                    send(f"{tag} OK done\r\n".encode())
        except OSError:
            pass
        finally:
            conn.close()


def _two_strings(args: str) -> tuple[str, str]:
    """The two arguments of LOGIN: atoms or quoted strings (with \\" and \\\\ escapes)."""
    out, i = [], 0
    while i < len(args) and len(out) < 2:
        if args[i] == " ":
            i += 1
        elif args[i] == '"':
            i += 1
            value = []
            while i < len(args) and args[i] != '"':
                if args[i] == "\\" and i + 1 < len(args):
                    i += 1
                value.append(args[i])
                i += 1
            out.append("".join(value))
            i += 1
        else:
            end = args.find(" ", i)
            end = len(args) if end < 0 else end
            out.append(args[i:end])
            i = end
    return out[0], out[1] if len(out) > 1 else ""

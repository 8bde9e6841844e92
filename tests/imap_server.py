"""A real Dovecot IMAP server on 127.0.0.1 for the tests, with a throw-away configuration.

Started from Debian's ``dovecot-imapd`` (``.ci/run`` installs it): a passwd-file of users, a
self-signed certificate for 127.0.0.1/localhost, Maildir storage in a temporary folder, IMAPS on
one port and IMAP (with STARTTLS) on another, the folder ``Sent`` flagged \\Sent (RFC 6154).
Mail is seeded over IMAP APPEND. ``DroppingProxy`` sits between a client and the server and cuts
the connection after a number of bytes, once, to test what a dropped connection does.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from tests.helpers import self_signed_certificate

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
DOVEADM = shutil.which("doveadm") or "/usr/bin/doveadm"
MAIL_UID = 65534  # nobody: Dovecot will not serve mail as root


def dovecot_missing() -> str | None:
    """Why the Dovecot tests cannot run here, or None."""
    if not Path(DOVECOT).is_file():
        return "Dovecot is not installed (apt-get install dovecot-imapd; .ci/run installs it)"
    if shutil.which("openssl") is None:
        return "openssl is not installed (needed for the test certificate)"
    if os.geteuid() != 0:
        return "the Dovecot tests start a server that drops to another user: run them as root (CI does)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CONFIG = """
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{root}/cert.pem
ssl_key = <{root}/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login xoauth2 oauthbearer
auth_failure_delay = 0
# no penalty for 127.0.0.1 after the tests' deliberate wrong passwords: it delayed every later
# login by 4 s (two tests, 8 s of the fast subset)
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
mail_location = maildir:{root}/mail/%u
first_valid_uid = {uid}
first_valid_gid = {uid}
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Sent {{
    special_use = \\Sent
  }}
  mailbox Drafts {{
    special_use = \\Drafts
  }}
}}
passdb {{
  driver = passwd-file
  mechanisms = plain login
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {root}/oauth2.conf
}}
userdb {{
  driver = static
  args = uid={uid} gid={uid} home={root}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
    ssl = yes
  }}
}}
"""


class Dovecot:
    def __init__(self, users: dict[str, str], tokens: dict[str, str] | None = None):
        self.root = Path(tempfile.mkdtemp(prefix="tiller-dovecot-"))
        os.chmod(self.root, 0o755)  # the mail processes run as nobody and must reach their folders
        self.port, self.tls_port = free_port(), free_port()
        self.users = users
        self.tokens = tokens or {}  # OAuth2 access token -> user, answered by a tokeninfo endpoint here
        self.config = self.root / "dovecot.conf"
        self.cert = self.root / "cert.pem"
        self.process: subprocess.Popen | None = None

    def start(self) -> Dovecot:
        for sub in ("run", "state", "mail", "home"):
            (self.root / sub).mkdir()
        for sub in ("mail", "home"):
            os.chown(self.root / sub, MAIL_UID, MAIL_UID)
        self_signed_certificate(self.root)  # cert.pem (self.cert) and key.pem, as the configuration names them
        (self.root / "passwd").write_text("".join(f"{u}:{{PLAIN}}{p}::::::\n" for u, p in self.users.items()))
        self.tokeninfo = _TokenInfo(self.tokens)
        (self.root / "oauth2.conf").write_text(
            f"tokeninfo_url = http://127.0.0.1:{self.tokeninfo.port}/tokeninfo?access_token=\n"
            "username_attribute = email\n"
        )
        self.config.write_text(CONFIG.format(root=self.root, uid=MAIL_UID, port=self.port, tls_port=self.tls_port))
        self.process = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(self.config)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dovecot exited: {self.process.stdout.read().decode(errors='replace')}")
            try:
                with (
                    socket.create_connection(("127.0.0.1", self.tls_port), timeout=1),
                    socket.create_connection(("127.0.0.1", self.port), timeout=1),
                ):
                    return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("dovecot did not start listening within 20 s")

    def stop(self) -> None:
        if getattr(self, "tokeninfo", None) is not None:
            self.tokeninfo.close()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        shutil.rmtree(self.root, ignore_errors=True)

    def client(self, user: str):
        """A logged-in IMAPClient over TLS that trusts the test certificate (for seeding and checks)."""
        import ssl

        from imapclient import IMAPClient

        context = ssl.create_default_context(cafile=str(self.cert))
        client = IMAPClient("127.0.0.1", port=self.tls_port, ssl=True, ssl_context=context, timeout=30)
        client.login(user, self.users[user])
        return client

    def append(self, user: str, folder: str, messages: list[bytes]) -> None:
        client = self.client(user)
        try:
            if not client.folder_exists(folder):
                client.create_folder(folder)
            for raw in messages:
                client.append(folder, raw, flags=())
        finally:
            client.logout()


class DroppingProxy:
    """TCP between the client and ``target``: each of the first ``drops`` connections is cut after
    ``drop_after`` bytes from the server have passed; later connections pass through whole."""

    def __init__(self, target_port: int, drop_after: int, drops: int = 1):
        self.target_port, self.drop_after, self.drops = target_port, drop_after, drops
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen()
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.dropped = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            limit = self.drop_after if self.connections <= self.drops else None
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(target=self._pump, args=(client, upstream, None), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, limit), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, limit: int | None) -> None:
        passed = 0
        try:
            while data := source.recv(65536):
                if limit is not None and passed + len(data) > limit:
                    sink.sendall(data[: limit - passed])
                    self.dropped += 1
                    break
                sink.sendall(data)
                passed += len(data)
        except OSError:
            pass
        for s in (source, sink):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self) -> None:
        self.listener.close()


class _TokenInfo:
    """The OAuth2 token-info endpoint Dovecot asks about an XOAUTH2 token: 200 with the user's
    name for a known token, 401 otherwise (what Google's and Microsoft's endpoints do)."""

    def __init__(self, tokens: dict[str, str]):
        import json
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import parse_qs, urlsplit

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the http.server API
                token = parse_qs(urlsplit(self.path).query).get("access_token", [""])[0]
                user = tokens.get(token)
                body = json.dumps({"email": user} if user else {"error": "invalid_token"}).encode()
                self.send_response(200 if user else 401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

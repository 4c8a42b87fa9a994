"""Certificates for the emulator's TLS mode, made with the ``openssl`` command (EC P-256, 2 days).

``make_pki(dir)`` writes a test CA and, signed by it, a server certificate for ``127.0.0.1``, a
server certificate for the name ``kube.test`` only (to test ``tls-server-name``) and a client
certificate with CN ``tester``; plus a self-signed ``rogue`` server certificate for 127.0.0.1 that
no kubeconfig trusts. ``Pki.server_context(which)`` is a server ``SSLContext`` for
``Emulator.start(tls=...)``; it asks for a client certificate and checks one against the CA.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


@dataclass(frozen=True)
class Pki:
    dir: Path

    def cert(self, name: str) -> Path:
        return self.dir / f"{name}.crt"

    def key(self, name: str) -> Path:
        return self.dir / f"{name}.key"

    def server_context(self, which: str = "server", *, client_ca: bool = True) -> ssl.SSLContext:
        """A server context presenting certificate ``which`` (server, named or rogue)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert(which), self.key(which))
        if client_ca:
            ctx.verify_mode = ssl.CERT_OPTIONAL  # a client certificate, when sent, must be ours
            ctx.load_verify_locations(self.cert("ca"))
        return ctx


def make_pki(directory: Path) -> Pki:
    """Write the CA and the certificates into ``directory`` (needs ``openssl`` on PATH)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("the TLS tests need the openssl command (Debian package openssl)")
    directory.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        subprocess.run(
            [openssl, *args],
            check=True,
            capture_output=True,
            cwd=directory,
            stdin=subprocess.DEVNULL,
        )

    run("req", "-x509", *_KEY, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
        "-subj", "/CN=tradewise test CA")  # fmt: skip
    for name, cn, san, usage in (
        ("server", "kube-apiserver", "IP:127.0.0.1", "serverAuth"),
        ("named", "kube.test", "DNS:kube.test", "serverAuth"),
        ("client", "tester", "", "clientAuth"),
    ):
        ext = directory / f"{name}.ext"
        lines = [
            "basicConstraints=CA:FALSE",
            "keyUsage=digitalSignature",
            f"extendedKeyUsage={usage}",
            "subjectKeyIdentifier=hash",
            "authorityKeyIdentifier=keyid",
        ]
        if san:
            lines.append(f"subjectAltName={san}")
        ext.write_text("\n".join(lines) + "\n")
        run("req", "-new", *_KEY, "-keyout", f"{name}.key", "-out", f"{name}.csr",
            "-subj", f"/CN={cn}")  # fmt: skip
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-out", f"{name}.crt",
            "-extfile", ext.name)  # fmt: skip
    run("req", "-x509", *_KEY, "-keyout", "rogue.key", "-out", "rogue.crt", "-days", "2",
        "-subj", "/CN=rogue", "-addext", "subjectAltName=IP:127.0.0.1")  # fmt: skip
    return Pki(directory)

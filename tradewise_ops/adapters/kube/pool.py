"""The HTTP(S) connections to one API server: a urllib3 pool built from an ``Access``.

TLS as kubectl does it: a kubeconfig CA replaces the system's roots (it does not add to them);
``insecure-skip-tls-verify`` checks nothing; ``tls-server-name`` is the name sent (SNI) and
checked in the certificate; a client certificate and key are loaded once into the TLS context
(from memory: a key is never written to a temporary file that outlives the load). A
``proxy-url`` (http, https, or socks5 when PySocks is installed) carries every request.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from tradewise_ops.errors import ConfigError

if TYPE_CHECKING:
    import ssl

    from tradewise_ops.adapters.kube.kubeconfig import Access

POOL_SIZE = 10  # connections kept per host: the requests of a deploy and its 4 watches


def pool_for(access: Access) -> Any:
    """A urllib3 ``PoolManager`` (or ``ProxyManager``) that reaches ``access.server`` as configured.

    ``ConfigError`` when the CA or the client certificate is not usable PEM, or the proxy is not.
    """
    import urllib3

    kwargs: dict[str, Any] = {"maxsize": POOL_SIZE, "block": False, "retries": False}
    if access.server.lower().startswith("https://"):
        kwargs["ssl_context"] = tls_context(access)
        kwargs["cert_reqs"] = "CERT_NONE" if access.insecure else "CERT_REQUIRED"
        if access.insecure:
            kwargs["assert_hostname"] = False
        if access.tls_server_name:
            kwargs["server_hostname"] = access.tls_server_name
    proxy = access.proxy_url
    if not proxy:
        return urllib3.PoolManager(**kwargs)
    scheme = proxy.split("://", 1)[0].lower() if "://" in proxy else ""
    if scheme.startswith("socks"):
        try:
            from urllib3.contrib.socks import SOCKSProxyManager
        except ImportError:
            raise ConfigError(
                f"proxy-url {proxy} is a SOCKS proxy: install PySocks (pip install pysocks)"
            ) from None
        return SOCKSProxyManager(proxy, **kwargs)
    if scheme not in ("http", "https"):
        raise ConfigError(f"proxy-url {proxy!r} is not an http://, https:// or socks5:// URL")
    return urllib3.ProxyManager(proxy, **kwargs)


def tls_context(access: Access) -> ssl.SSLContext:
    """The TLS settings of ``access``: which CA to trust, whether to check, our certificate."""
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # checks the certificate and the host name
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if access.insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif access.ca is not None:
        try:
            ctx.load_verify_locations(cadata=access.ca.decode("ascii"))
        except (ssl.SSLError, ValueError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"the certificate-authority of {access.server} in the kubeconfig is not a PEM "
                f"certificate: {_reason(exc)}"
            ) from None
    else:
        ctx.load_default_certs()
    if access.client_cert is not None and access.client_key is not None:
        try:
            with _in_memory(access.client_cert) as cert, _in_memory(access.client_key) as key:
                ctx.load_cert_chain(cert, key)
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(
                f"the client certificate or key for {access.server} in the kubeconfig is not "
                f"usable PEM (or they do not match): {_reason(exc)}"
            ) from None
    return ctx


@contextlib.contextmanager
def _in_memory(data: bytes) -> Iterator[str]:
    """A path to ``data`` for ``load_cert_chain``: a memory file, else a private temporary one."""
    memfd = getattr(os, "memfd_create", None)
    if memfd is not None:
        fd = memfd("tradewise-tls", 0)
        try:
            os.write(fd, data)
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="tradewise-tls-") as tmp:  # private: mode 0700
        path = os.path.join(tmp, "pem")
        with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as fh:
            fh.write(data)
        yield path


def _reason(exc: BaseException) -> str:
    return str(getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc)

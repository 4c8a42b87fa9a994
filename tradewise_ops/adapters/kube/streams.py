"""Answers that are not JSON objects: a pod's log (streamed text) and a service-proxied GET.

Both go through the gateway's one request path (``Transport.send(stream=True)``: counted,
retried before the answer starts, failures mapped to the project's errors); this module only
reads what comes back. ``TextStream.close`` can be called from another thread: it shuts the
socket down, so a reader blocked on a quiet ``follow`` stream returns at once.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any


class TextStream:
    """A text answer read line by line (a pod's log); ``close()`` ends it from any thread."""

    def __init__(self, response: Any) -> None:
        self._response = response
        self.closed = False

    def lines(self) -> Iterator[str]:
        """Each line (without its newline) as it arrives; a last line without one too."""
        buffer = b""
        try:
            for chunk in self._response.stream(amt=None, decode_content=True):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    yield line.decode("utf-8", "replace")
        except Exception:  # noqa: BLE001 - closed from another thread, or the connection dropped
            if not self.closed:
                raise
            return
        finally:
            self.close()
        if buffer:
            yield buffer.decode("utf-8", "replace")

    def close(self) -> None:
        """End the stream: shut the socket down (wakes a blocked reader), release it."""
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(Exception):
            self._response.shutdown()
        with contextlib.suppress(Exception):
            self._response.release_conn()


def read_json(response: Any) -> Any:
    """The whole body of a streamed answer as JSON (a proxied application's answer)."""
    try:
        raw = response.data
    finally:
        with contextlib.suppress(Exception):
            response.release_conn()
    return json.loads(raw) if raw else None

"""A project-owned Kubernetes API emulator for tests (real HTTP on 127.0.0.1).

Built on the standard library's ``ThreadingHTTPServer`` rather than on kmock 0.8's handlers
(see ``docs/contracts.md`` "Emulator" for why); used through a real kubeconfig by the official
client and by kubectl. Start one with ``Emulator().start()`` or the ``emulator`` fixture of
``tests.k8s_emulator.fixtures``.
"""

from __future__ import annotations

from tests.k8s_emulator.emulator import Emulator
from tests.k8s_emulator.server import Fault, RequestRecord
from tests.k8s_emulator.store import ApiError, ResourceType

__all__ = ["ApiError", "Emulator", "Fault", "RequestRecord", "ResourceType"]

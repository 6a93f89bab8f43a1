"""A Ray instance started on this machine listens on 127.0.0.1 only.

Ray gives every server it starts (GCS, raylet, workers, agents) the node's IP address, and by
default that is the address the machine reaches the network with: a local re-scoring run would
put an unauthenticated Ray head on the facility network, the exposure behind the known attacks
on open Ray clusters. Ray's own switch for "local Ray only" (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0,
the default on macOS and Windows) makes that address 127.0.0.1, and every server then binds
there. It is read when Ray is imported and by every process Ray starts (they inherit the
environment), so it is set in both places before `ray.init`; after the start the address is
checked, and an instance that came up anywhere else is shut down and refused.

A real cluster (`--ray HOST:PORT`, `ray start --head`) is the operator's to secure: docs/daemon.md.
"""

from __future__ import annotations

import ipaddress
import os
from typing import Any

from ..errors import UsageError

LOCAL_ONLY = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def start_local_ray(**options: Any) -> None:
    """`ray.init(**options)` without an address (start an instance here, or join the one
    `ray start` runs here), an instance it starts bound to 127.0.0.1."""
    os.environ[LOCAL_ONLY] = "0"  # before the import: read there, and inherited by Ray's servers
    import ray
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False  # Ray was imported before: its copy of the switch
    ray.init(**options)
    if started_here(ray) and not is_loopback_address(ray.get_runtime_context().gcs_address):
        where = ray.get_runtime_context().gcs_address
        ray.shutdown()
        raise UsageError(f"the local Ray instance came up on {where}, not 127.0.0.1: refusing "
                         "to run a Ray head reachable from the network")


def started_here(ray: Any) -> bool:
    """Whether the connected instance is one this process started (not one `ray start` runs)."""
    node = getattr(ray._private.worker, "_global_node", None)
    return bool(getattr(node, "head", False))


def is_loopback_address(address: str) -> bool:
    host = address.rsplit(":", 1)[0].strip("[]")
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"

"""A Ray instance that `score --ray` (no address), the tests and the Ray benchmark start on
this machine listens on loopback only: every listening socket of every process it starts."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# In a fresh interpreter (Ray once per process), as `score --ray` connects: every listening
# socket of the driver and the processes under it (the Ray servers and workers), then shut down.
LISTENERS = """
import json, psutil, ray
from edgecrystal.scale.ray_score import _connect
_connect(None) if MODE == "score" else __import__(
    "edgecrystal.scale.loopback", fromlist=["x"]).start_local_ray(num_cpus=1,
    include_dashboard=False, log_to_driver=False)
ray.get(ray.remote(lambda: 1).remote())  # a worker started and answered
me = psutil.Process()
seen = set()
for process in [me, *me.children(recursive=True)]:
    try:
        for c in process.net_connections(kind="inet"):
            if c.status == psutil.CONN_LISTEN:
                seen.add(c.laddr.ip)
    except psutil.Error:
        pass
print(json.dumps({"listen": sorted(seen), "gcs": ray.get_runtime_context().gcs_address}))
ray.shutdown()
"""


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["score", "helper"])
def test_a_local_ray_instance_listens_on_loopback_only(mode: str) -> None:
    pytest.importorskip("ray")
    pytest.importorskip("psutil")
    done = subprocess.run([sys.executable, "-c", f"MODE = {mode!r}\n{LISTENERS}"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["listen"], found  # Ray's servers were seen at all
    assert all(ip in ("127.0.0.1", "::ffff:127.0.0.1", "::1") for ip in found["listen"]), found
    assert found["gcs"].startswith("127.0.0.1:"), found

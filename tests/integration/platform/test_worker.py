from heimdall.core.tasks import ping
from tests.support.processes import ManagedProcess


def test_a_real_worker_consumes_from_the_broker(worker: ManagedProcess) -> None:
    result = ping.apply_async().get(timeout=20)
    assert result["pong"] is True
    # Served by a prefork child of the worker we started, not by this process.
    assert result["pid"] != worker.process.pid

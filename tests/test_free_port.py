"""The test and bench harness's ports: two services of one run never get the same one."""

from __future__ import annotations

from tests.support.processes import free_port


def test_free_port_never_hands_out_a_port_twice() -> None:
    # Among a few thousand ports the kernel offers for bind(0), some come again (a birthday draw over
    # its ~28,000 ephemeral ports): a service given one of those twice fails to bind it.
    ports = [free_port() for _ in range(3000)]
    assert len(set(ports)) == len(ports)

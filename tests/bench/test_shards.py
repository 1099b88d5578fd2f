"""The automatic number of client worker processes (``--client-workers auto``)."""

from specwise.bench.shards import CHUNKS_PER_S_PER_WORKER, default_client_workers


def test_one_worker_until_the_measured_capacity_then_one_per_capacity():
    per = CHUNKS_PER_S_PER_WORKER["kernel"]
    assert default_client_workers(0, kernel_stamps=True, cpus=16) == 1
    assert default_client_workers(per, kernel_stamps=True, cpus=16) == 1
    assert default_client_workers(per * 2.5, kernel_stamps=True, cpus=16) == 3


def test_loop_stamps_need_more_workers_than_kernel_stamps():
    rate = CHUNKS_PER_S_PER_WORKER["kernel"]
    assert default_client_workers(rate, kernel_stamps=False, cpus=64) > default_client_workers(
        rate, kernel_stamps=True, cpus=64)


def test_workers_leave_a_cpu_and_never_drop_below_one():
    assert default_client_workers(1e9, kernel_stamps=True, cpus=8) == 7
    assert default_client_workers(1e9, kernel_stamps=True, cpus=2) == 1
    assert default_client_workers(1e9, kernel_stamps=False, cpus=1) == 1

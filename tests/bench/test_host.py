"""The host record a measured run carries."""

from specwise.bench.host import host_info


def test_host_info_names_cpu_and_count():
    info = host_info()
    assert isinstance(info["cpu_model"], str) and info["cpu_model"]
    assert isinstance(info["logical_cpus"], int) and info["logical_cpus"] >= 1


def test_host_info_times_the_python_loop_like_the_gpu_host_probe():
    from specwise.bench.host import python_loop_ns

    info = host_info()
    # a real interpreter runs this loop in tens of ns per iteration, never in none or in seconds
    assert 1 < info["python_loop_ns"] < 10_000 and info["python"].count(".") == 2
    # fewer iterations time the same loop: the figure is per iteration, not per call
    assert 0.2 < python_loop_ns(20_000, 3) / info["python_loop_ns"] < 5

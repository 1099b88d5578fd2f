"""The host record a measured run carries."""

from specwise.bench.host import host_info


def test_host_info_names_cpu_and_count():
    info = host_info()
    assert isinstance(info["cpu_model"], str) and info["cpu_model"]
    assert isinstance(info["logical_cpus"], int) and info["logical_cpus"] >= 1

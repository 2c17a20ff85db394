"""The bench goal table: each goal reads its run's numbers, and a missing one never passes."""
from tests.bench.goals import goals, host


def _by_measure(results: dict) -> dict:
    return {g.measure: g for g in goals(results)}


def test_goal_met_and_missed_follow_the_numbers():
    table = _by_measure({
        "bench_objects": {"raw_read_mib_s": 1000.0, "engine_get_mib_s_3": 600.0,
                          "raw_write_mib_s": 100.0, "engine_put_mib_s_3": 28.0,
                          "bare_put_mib_s_3": 29.0,
                          "small_ops_32_clients": {"put_ops_s": 131.0}},
        "bench_api": {"steps": {"10": {"detail_p50": 0.005},
                                "1000": {"detail_p50": 0.071, "ports": 1000}},
                      "side_by_side": {"token": {"p50_at_10": 0.001, "p50_at_1000": 0.0011,
                                                 "ratio": 1.1},
                                       "create": {"ratio": 1.3}}},
    })
    get = table["object GET 1 GiB, checksums verified / raw read"]
    assert get.value == 0.6 and get.met
    put = table["object PUT 1 GiB, 3 replicas: bytes per replica / raw write+fsync"]
    assert put.value == 0.84 and not put.met
    floor = table["object PUT 1 GiB, 3 replicas / bare 3-replica write+fsync+md5 (threads)"]
    assert floor.value == 0.9655 and floor.met
    assert not table["object PUT 4 KiB at 32 clients (ops/s)"].met
    detail = table["GET /servers/detail, 1,000 instances, p50 (ms)"]
    assert detail.value == 71.0 and not detail.met
    token = table["token validation p50 at 1,000 / at 10 existing resources"]
    assert token.value == 1.1 and token.met
    create = table["server create p50 at 1,000 / at 10 existing resources"]
    assert create.value == 1.3 and not create.met
    port = table["port create p50 at 1,000 servers and 1000 ports / at 10 existing resources"]
    assert port.value is None and not port.met


def test_object_put_ratios_are_the_median_of_side_by_side_rounds_when_recorded():
    objects = {"raw_write_mib_s": 1000.0, "engine_put_mib_s_3": 200.0, "bare_put_mib_s_3": 400.0}
    table = _by_measure({"bench_objects": {**objects, "put_vs_bare_3_median": 0.95,
                                           "put_per_replica_byte_vs_raw_3_median": 0.85}})
    assert table["object PUT 1 GiB, 3 replicas / bare 3-replica write+fsync+md5 (threads)"].value == 0.95
    assert table["object PUT 1 GiB, 3 replicas: bytes per replica / raw write+fsync"].value == 0.85
    old = _by_measure({"bench_objects": objects})  # a record from before the rounds
    assert old["object PUT 1 GiB, 3 replicas / bare 3-replica write+fsync+md5 (threads)"].value == 0.5
    assert old["object PUT 1 GiB, 3 replicas: bytes per replica / raw write+fsync"].value == 0.6


def test_console_keystroke_echo_is_read_against_raw_and_against_bare_textual():
    table = _by_measure({"bench_console": {"key_echo_ms": 1.5, "raw_key_echo_ms": 0.5,
                                           "bare_textual_key_echo_ms": 1.4}})
    raw = table["TUI console keystroke→echo / raw websocket client (echo guest)"]
    assert raw.value == 3.0 and not raw.met
    bare = table["TUI console keystroke→echo / bare Textual app, same websocket (echo)"]
    assert bare.value == 1.0714 and bare.met
    assert table["TUI console keystroke→echo / raw websocket client (TCG guest shell)"].value is None


def test_a_goal_without_numbers_is_not_met():
    table = goals({"bench_dhcp": {"skipped": True}, "bench_boot": {"error": "boom"}})
    assert len(table) == 22
    assert all(g.value is None and not g.met for g in table)


def test_the_host_record_says_whether_the_machine_was_shared():
    assert host(True)["shared"] is True
    assert host(None)["shared"] is None
    assert host(False)["cpus"] >= 1

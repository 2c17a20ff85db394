import pytest

from appliance.config import Config
from appliance.errors import Invalid


def test_empty_config_is_complete_and_defaults_sane():
    c = Config.from_dict({})
    assert c.compute.cpu_allocation_ratio == 4.0 and c.network.namespace
    assert c.api.listen_host_port is None


def test_toml_sections_are_typed(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('state_dir = "/x"\n[api]\nlisten = "0.0.0.0:5000"\n'
                 '[storage]\nobject_devices = ["/a", "/b"]\n')
    c = Config.load(p)
    assert str(c.state_dir) == "/x" and c.api.listen_host_port == ("0.0.0.0", 5000)
    assert c.api.base_url == "http://127.0.0.1:5000"
    assert [str(d) for d in c.storage.object_devices] == ["/a", "/b"]


def test_unknown_keys_and_bad_types_are_clear_errors(tmp_path):
    with pytest.raises(Invalid, match="unknown config key api.lisen"):
        Config.from_dict({"api": {"lisen": "x"}})
    with pytest.raises(Invalid, match="must be a number"):
        Config.from_dict({"compute": {"cpu_allocation_ratio": "lots"}})
    p = tmp_path / "bad.toml"
    p.write_text("[api\n")
    with pytest.raises(Invalid, match="cannot read config"):
        Config.load(p)


def test_tcp_limits_keep_a_reserve_of_descriptors_for_the_rest_of_the_daemon():
    from appliance.api.listeners import TcpLimits
    from appliance.config import ApiConfig
    api = ApiConfig(max_connections=4096, max_connections_per_address=256, header_timeout=7)
    assert TcpLimits.for_config(api, 1_048_576).max_connections == 4096
    assert TcpLimits.for_config(api, 4096).max_connections == 3072  # a quarter kept back
    assert TcpLimits.for_config(api, 1024).max_connections == 768  # at least 256 kept back
    small = TcpLimits.for_config(api, 300)
    assert small.max_connections == 44 and small.per_address == 256
    assert small.header_timeout == 7


def test_log_lines_carry_the_request_id():
    """A line logged while a request is served names it (as its actions and audit do)."""
    import io
    import json
    import logging

    from appliance import request_context
    from appliance.logging_setup import JsonFormatter, RequestIdFilter
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("monostack.test-request-id")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("outside")
        mark = request_context.set_current(request_context.RequestInfo(request_id="req-abc"))
        try:
            logger.warning("inside")
        finally:
            request_context.reset(mark)
    finally:
        logger.removeHandler(handler)
    outside, inside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert "request_id" not in outside and inside["request_id"] == "req-abc"

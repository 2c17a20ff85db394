"""Swift's HTTP rules without a daemon: paths, ranges, conditions, ACLs, metadata."""
from __future__ import annotations

import pytest

from appliance.errors import BadRequest, NotFound
from appliance.objects.swift import (
    Acl,
    delete_at_from,
    evaluate_conditions,
    http_date,
    parse_path,
    parse_range,
    user_metadata,
)


def test_parse_path_decodes_each_segment_and_keeps_dots():
    p = parse_path("/swift/v1/AUTH_p/c/%2e%2e/a%2Fb?x=1")
    assert (p.account, p.container, p.object, p.project_id) == ("AUTH_p", "c", "../a/b", "p")
    assert parse_path("/swift/v1/AUTH_p/c/").object is None
    assert parse_path("/swift/v1/AUTH_p").container is None
    with pytest.raises(BadRequest):
        parse_path("/swift/v1/AUTH_p/c/%ff%fe")
    with pytest.raises(NotFound):
        parse_path("/swift/v1/project/c")


@pytest.mark.parametrize("header, want", [
    ("bytes=0-9", [(0, 9)]), ("bytes=-5", [(None, 5)]), ("bytes=7-", [(7, None)]),
    ("bytes=0-1, 4-5", [(0, 1), (4, 5)]), ("bytes=5-1", None), ("items=0-1", None),
    ("bytes=a-b", None), ("", None), (None, None),
])
def test_parse_range(header, want):
    assert parse_range(header) == want


def test_conditions_follow_rfc7232_order():
    lm = 1_700_000_000.2
    assert evaluate_conditions({"If-Match": '"abc"'}, "abc", lm, safe=True) is None
    assert evaluate_conditions({"If-Match": "x", "If-None-Match": "abc"}, "abc", lm, safe=True) == 412
    assert evaluate_conditions({"If-None-Match": "*"}, "abc", lm, safe=True) == 304
    assert evaluate_conditions({"If-None-Match": "abc"}, "abc", lm, safe=False) == 412
    # Last-Modified is rounded up: the value a client just read answers 304
    assert evaluate_conditions({"If-Modified-Since": http_date(lm)}, "e", lm, safe=True) == 304
    assert evaluate_conditions({"If-Unmodified-Since": http_date(lm - 10)}, "e", lm, safe=True) == 412
    assert evaluate_conditions({"If-Modified-Since": "not a date"}, "e", lm, safe=True) is None


def test_acl_grants():
    acl = Acl.parse("p1:*, p2:u2, .r:*")
    assert acl.allows("p1", "one", "anyone", "x")
    assert acl.allows("p2", "two", "u2", "bob") and not acl.allows("p2", "two", "u3", "eve")
    assert acl.public_read and not acl.public_listing
    assert Acl.parse("*:*").allows("any", None, "u", "n")
    assert Acl.parse("proj-name:*").allows("pid", "proj-name", "u", "n")
    assert not Acl.parse(".r:example.com").public_read
    assert not Acl.parse("").allows("p", "p", "u", "u")


def test_metadata_and_expiry_headers():
    assert user_metadata({"X-Object-Meta-Color": " red ", "X-Remove-Object-Meta-Old": "1",
                          "X-Container-Meta-No": "x"}, "object") == {"color": "red", "old": ""}
    with pytest.raises(BadRequest):
        user_metadata({f"X-Object-Meta-K{i}": "v" for i in range(91)}, "object")
    assert delete_at_from({"X-Delete-After": "10"}, now=100.5) == 110.0
    assert delete_at_from({}, now=1) is None
    with pytest.raises(BadRequest):
        delete_at_from({"X-Delete-At": "50"}, now=100)
    with pytest.raises(BadRequest):
        delete_at_from({"X-Delete-After": "-1"}, now=100)

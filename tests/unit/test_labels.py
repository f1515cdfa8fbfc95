import pytest

from iss_plugin.domain.errors import UsageError
from iss_plugin.domain.labels import check_server_id, server_id_from_hostname


@pytest.mark.parametrize("good", ["dc2", "DC_2-east", "a", "x" * 128, "0"])
def test_good_server_ids(good):
    assert check_server_id(good) == good


@pytest.mark.parametrize("bad", ["dc2.example.com", "dc 2", "dc*", "dc#", "", "x" * 129, "dc2\n", "dc/2", "dé"])
def test_bad_server_ids_say_what_is_allowed(bad):
    with pytest.raises(UsageError, match="use only letters, digits, '-' and '_'"):
        check_server_id(bad)


@pytest.mark.parametrize(
    "hostname, head",
    [
        ("web01.dc2.example.com", "web01"),
        ("web01", "web01"),
        ("web 01!.example.com", "web-01"),
        ("*#.example.com", "iss"),
        ("", "iss"),
        ("h" * 300 + ".example.com", "h" * 119),
    ],
)
def test_the_default_server_id_uses_the_first_hostname_label(hostname, head):
    server_id = server_id_from_hostname(hostname, "0123abcd")
    assert server_id == f"{head}-0123abcd"
    assert check_server_id(server_id) == server_id


def test_a_label_with_a_trailing_newline_is_refused():
    from iss_plugin.domain.labels import check_label

    with pytest.raises(UsageError):
        check_label("rhel-9\n")
    assert check_label("rhel-9") == "rhel-9"

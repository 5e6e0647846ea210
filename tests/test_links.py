"""Legacy links: the exact environment and /etc/hosts lines Docker's ``--link`` gives
(the "Service discovery" slide). End-to-end checks are in test_network_e2e.py."""

from __future__ import annotations

import pytest

from minidocker.engine.links import env_for_link, parse_link
from minidocker.errors import InvalidInput


def mysql_state(exposed):
    return {"Config": {"ExposedPorts": {p: {} for p in exposed},
                       "Env": ["PATH=/usr/local/sbin:/usr/bin", "HOME=/root", "MYSQL_MAJOR=5.6",
                               "MYSQL_VERSION=5.6.23", "MYSQL_ROOT_PASSWORD=secret"]}}


def test_the_slides_link_environment():
    env = env_for_link("clever_turing", "mysqlserver", mysql_state(["3306/tcp"]), "172.17.0.62")
    assert env == [
        "MYSQLSERVER_PORT=tcp://172.17.0.62:3306",
        "MYSQLSERVER_PORT_3306_TCP=tcp://172.17.0.62:3306",
        "MYSQLSERVER_PORT_3306_TCP_ADDR=172.17.0.62",
        "MYSQLSERVER_PORT_3306_TCP_PORT=3306",
        "MYSQLSERVER_PORT_3306_TCP_PROTO=tcp",
        "MYSQLSERVER_NAME=/clever_turing/mysqlserver",
        # the linked container's env, image defaults and -e alike, but not HOME and PATH
        "MYSQLSERVER_ENV_MYSQL_MAJOR=5.6",
        "MYSQLSERVER_ENV_MYSQL_VERSION=5.6.23",
        "MYSQLSERVER_ENV_MYSQL_ROOT_PASSWORD=secret",
    ]


def test_lowest_port_tcp_first_udp_and_ranges():
    env = env_for_link("web", "db-1", mysql_state(["53/udp", "53/tcp", "8001/tcp", "8000/tcp"]), "10.0.0.2")
    assert env[0] == "DB_1_PORT=tcp://10.0.0.2:53"  # lowest port, tcp preferred
    assert "DB_1_PORT_53_UDP=udp://10.0.0.2:53" in env
    assert "DB_1_PORT_53_UDP_PROTO=udp" in env
    # a run of consecutive ports is also announced as a range
    for var in ["DB_1_PORT_8000_TCP_START=tcp://10.0.0.2:8000", "DB_1_PORT_8000_TCP_PORT_START=8000",
                "DB_1_PORT_8000_TCP_PORT_END=8001", "DB_1_PORT_8000_TCP_END=tcp://10.0.0.2:8001"]:
        assert var in env
    assert "DB_1_NAME=/web/db-1" in env


def test_no_exposed_ports_means_no_port_variables():
    env = env_for_link("a", "b", {"Config": {"Env": ["X=1"]}}, "10.0.0.3")
    assert env == ["B_NAME=/a/b", "B_ENV_X=1"]


def test_link_spec():
    assert parse_link("db") == ("db", "db")
    assert parse_link("/db:mysqlserver") == ("db", "mysqlserver")
    with pytest.raises(InvalidInput):
        parse_link(":alias")

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


def test_tcp_first_udp_after_and_ranges_in_dockers_order():
    env = env_for_link("web", "db-1", mysql_state(["53/udp", "8001/tcp", "8000/tcp", "9000/tcp"]), "10.0.0.2")
    ip = "10.0.0.2"
    assert env[:-3] == [
        f"DB_1_PORT=tcp://{ip}:8000",  # the lowest *tcp* port, even with 53/udp exposed
        f"DB_1_PORT_8000_TCP=tcp://{ip}:8000", f"DB_1_PORT_8000_TCP_ADDR={ip}",
        "DB_1_PORT_8000_TCP_PORT=8000", "DB_1_PORT_8000_TCP_PROTO=tcp",
        f"DB_1_PORT_8001_TCP=tcp://{ip}:8001", f"DB_1_PORT_8001_TCP_ADDR={ip}",
        "DB_1_PORT_8001_TCP_PORT=8001", "DB_1_PORT_8001_TCP_PROTO=tcp",
        f"DB_1_PORT_9000_TCP=tcp://{ip}:9000", f"DB_1_PORT_9000_TCP_ADDR={ip}",
        "DB_1_PORT_9000_TCP_PORT=9000", "DB_1_PORT_9000_TCP_PROTO=tcp",
        # 8000-8001 was a run of consecutive ports: announced as a range once it ended
        f"DB_1_PORT_8000_TCP_START=tcp://{ip}:8000", "DB_1_PORT_8000_TCP_PORT_START=8000",
        f"DB_1_PORT_8000_TCP_END=tcp://{ip}:8001", "DB_1_PORT_8000_TCP_PORT_END=8001",
        f"DB_1_PORT_53_UDP=udp://{ip}:53", f"DB_1_PORT_53_UDP_ADDR={ip}",
        "DB_1_PORT_53_UDP_PORT=53", "DB_1_PORT_53_UDP_PROTO=udp",
        "DB_1_NAME=/web/db-1",
    ]


def test_no_exposed_ports_means_no_port_variables():
    env = env_for_link("a", "b", {"Config": {"Env": ["X=1"]}}, "10.0.0.3")
    assert env == ["B_NAME=/a/b", "B_ENV_X=1"]


def test_link_spec():
    assert parse_link("db") == ("db", "db")
    assert parse_link("/db:mysqlserver") == ("db", "mysqlserver")
    with pytest.raises(InvalidInput):
        parse_link(":alias")

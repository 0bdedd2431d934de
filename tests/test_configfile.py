"""Config validation: each rule with a passing and a failing case, errors naming file:line: key."""

from ipaddress import IPv4Address
from pathlib import Path

import pytest

from netboot.config import DhcpMode, Loader, RbdConfig, StorageKind, UnknownPolicy, effective_config
from netboot.configfile import load_config, parse_config
from netboot.errors import ConfigError, NetbootError

MINIMAL = """\
server:
  address: 198.18.0.1
dhcp:
  subnet: 198.18.0.0/24
"""


def error_of(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "netboot.yaml")
    return info.value


def test_minimal_file_fills_every_default():
    config = parse_config(MINIMAL)
    assert config.server.interface == "eth0"
    assert config.server.http_port == 8080
    assert config.dhcp.mode is DhcpMode.FULL
    assert config.dhcp.unknown is UnknownPolicy.IGNORE
    assert config.boot.loader is Loader.IPXE
    assert config.portal == (IPv4Address("198.18.0.1"), 3260)
    assert config.dhcp.dynamic_range == (IPv4Address("198.18.0.192"), IPv4Address("198.18.0.254"))
    assert config.storage.images == config.storage.state_dir / "images"


def test_tftp_root_defaults_to_tftproot_in_the_state_dir():
    config = parse_config(MINIMAL + "storage:\n  state_dir: /srv/netboot\n")
    assert config.tftp_root_path == Path("/srv/netboot/tftproot")
    assert effective_config(config)["server"]["tftp_root"] == "/srv/netboot/tftproot"


def test_tftp_root_in_the_file_wins_over_the_state_dir():
    config = parse_config(MINIMAL.replace("server:\n", "server:\n  tftp_root: /srv/tftp\n"))
    assert config.tftp_root_path == Path("/srv/tftp")


def test_every_section_key_is_read():
    config = parse_config(MINIMAL.replace("dhcp:\n", """\
dhcp:
  mode: proxy
  router: 198.18.0.254
  dns: [198.18.0.2, 198.18.0.3]
  lease_time: 600
  unknown: boot
""") + """\
target:
  portal_port: 3261
  mutual_chap: false
storage:
  default_lun_size: 8G
boot:
  loader: pxelinux
  extra_modules: [nvme, virtio_blk]
""")
    assert config.dhcp.mode is DhcpMode.PROXY
    assert config.dhcp.dns == (IPv4Address("198.18.0.2"), IPv4Address("198.18.0.3"))
    assert config.target.portal_port == 3261 and not config.target.mutual_chap
    assert config.storage.default_lun_size == 8 << 30
    assert config.boot.extra_modules == ("nvme", "virtio_blk")


def test_unknown_key_suggests_the_close_one_with_its_line():
    err = error_of(MINIMAL + "boot:\n  kernel_arg: quiet\n")
    assert (err.line, err.key) == (6, "boot.kernel_arg")
    assert "did you mean 'kernel_args'" in str(err)
    assert str(err).startswith("netboot.yaml:6: boot.kernel_arg:")


def test_unknown_section_is_an_error():
    err = error_of(MINIMAL + "dhpc2:\n  x: 1\n")
    assert err.key == "dhpc2" and err.line == 5


def test_wrong_type_names_what_was_expected():
    err = error_of(MINIMAL.replace("address: 198.18.0.1", "address: 198.18.0.1\n  http_port: web"))
    assert (err.line, err.key) == (3, "server.http_port")
    assert "expected an integer" in err.message


def test_bad_enum_value_lists_the_choices():
    err = error_of(MINIMAL + "  mode: everything\n")
    assert err.key == "dhcp.mode" and err.line == 5
    assert "'full', 'proxy', 'off'" in err.message


def test_bad_address_is_an_error():
    err = error_of(MINIMAL.replace("198.18.0.1", "198.18.0.300"))
    assert (err.line, err.key) == (2, "server.address")


def test_subnet_must_be_a_network_address():
    err = error_of(MINIMAL.replace("198.18.0.0/24", "198.18.0.5/24"))
    assert err.key == "dhcp.subnet"


def test_server_address_must_be_in_subnet():
    err = error_of(MINIMAL.replace("address: 198.18.0.1", "address: 198.19.0.1"))
    assert (err.line, err.key) == (2, "server.address")
    assert "not in dhcp.subnet" in err.message


def test_router_must_be_in_subnet():
    err = error_of(MINIMAL + "  router: 198.19.0.1\n")
    assert (err.line, err.key) == (5, "dhcp.router")


def test_range_must_not_include_the_server():
    err = error_of(MINIMAL + "  range_start: 198.18.0.1\n  range_end: 198.18.0.50\n")
    assert err.key == "dhcp.range_start" and err.line == 5
    assert "includes server.address" in err.message


def test_range_must_not_include_the_router():
    err = error_of(MINIMAL + "  router: 198.18.0.20\n  range_start: 198.18.0.10\n"
                   "  range_end: 198.18.0.50\n")
    assert "includes dhcp.router" in err.message


def test_range_clear_of_server_and_router_is_accepted():
    config = parse_config(MINIMAL + "  router: 198.18.0.254\n  range_start: 198.18.0.100\n"
                          "  range_end: 198.18.0.200\n")
    assert config.dhcp.dynamic_range == (IPv4Address("198.18.0.100"), IPv4Address("198.18.0.200"))


def test_range_start_after_end_is_an_error():
    err = error_of(MINIMAL + "  range_start: 198.18.0.200\n  range_end: 198.18.0.100\n")
    assert "after range end" in err.message


def test_range_outside_subnet_is_an_error():
    err = error_of(MINIMAL + "  range_start: 198.18.1.10\n  range_end: 198.18.0.100\n")
    assert err.key == "dhcp.range_start"


def test_port_out_of_range_is_an_error():
    text = MINIMAL.replace("address: 198.18.0.1", "address: 198.18.0.1\n  http_port: 70000")
    err = error_of(text)
    assert err.key == "server.http_port" and err.line == 3


def test_tftp_max_per_source_defaults_to_8_and_is_shown():
    config = parse_config(MINIMAL)
    assert config.server.tftp_max_per_source == 8
    assert effective_config(config)["server"]["tftp_max_per_source"] == 8


@pytest.mark.parametrize("value", [0, 10001])
def test_tftp_max_per_source_out_of_range_is_an_error(value: int):
    err = error_of(MINIMAL.replace("address: 198.18.0.1",
                                   f"address: 198.18.0.1\n  tftp_max_per_source: {value}"))
    assert (err.key, err.line) == ("server.tftp_max_per_source", 3)


@pytest.mark.parametrize("key", ["http_threads", "http_max_per_source", "http_request_timeout"])
def test_an_http_limit_of_zero_is_an_error(key: str):
    text = MINIMAL.replace("address: 198.18.0.1", f"address: 198.18.0.1\n  {key}: 0")
    err = error_of(text)
    assert err.key == f"server.{key}" and err.line == 3


def test_short_lease_is_an_error():
    assert error_of(MINIMAL + "  lease_time: 10\n").key == "dhcp.lease_time"


@pytest.mark.parametrize("line", ["unknown_rate: 0", "unknown_max: 0"])
def test_an_unknown_machine_limit_of_zero_is_an_error(line: str):
    assert error_of(MINIMAL + f"  {line}\n").key == f"dhcp.{line.split(':')[0]}"


def test_iqn_authority_must_be_valid():
    err = error_of(MINIMAL + "target:\n  iqn_authority: iqn.2026-11.Example\n")
    assert (err.line, err.key) == (6, "target.iqn_authority")


def test_bad_size_is_an_error():
    err = error_of(MINIMAL + "storage:\n  default_lun_size: lots\n")
    assert (err.line, err.key) == (6, "storage.default_lun_size")


def test_missing_required_key_is_named():
    err = error_of("server:\n  interface: eth1\ndhcp:\n  mode: full\n")
    assert err.key in ("server.address", "dhcp.subnet")
    assert "required" in err.message


def test_duplicate_key_is_an_error():
    err = error_of(MINIMAL + "  subnet: 198.18.1.0/24\n")
    assert err.key == "subnet" and err.line == 5


def test_yaml_syntax_error_names_its_line():
    err = error_of(MINIMAL + "boot:\n  loader: [ipxe\n")
    assert err.key == "(syntax)" and err.line is not None and err.line >= 6


def test_empty_file_is_an_error():
    assert "empty" in error_of("").message


def test_missing_file_says_how_to_create_one(tmp_path):
    with pytest.raises(NetbootError, match="netboot init"):
        load_config(tmp_path / "absent.yaml")


def test_load_config_reads_the_file(tmp_path):
    path = tmp_path / "netboot.yaml"
    path.write_text(MINIMAL)
    assert load_config(path).source == path


def test_bare_off_is_the_word_not_a_boolean():
    assert parse_config(MINIMAL + "  mode: off\n").dhcp.mode is DhcpMode.OFF


def test_boolean_key_still_needs_a_boolean():
    err = error_of(MINIMAL + "  router_advertisements: maybe\n")
    assert err.key == "dhcp.router_advertisements" and "true or false" in err.message


def test_boot_tokens_are_on_wherever_netboot_answers_dhcp():
    assert parse_config(MINIMAL).tokens
    assert not parse_config(MINIMAL + "  mode: off\n").tokens


def test_boot_tokens_with_dhcp_off_name_the_key_and_its_line():
    err = error_of(MINIMAL + "  mode: off\nboot:\n  tokens: true\n")
    assert (err.key, err.line) == ("boot.tokens", 7) and "dhcp.mode" in err.message


def test_rotate_chap_takes_per_boot_or_never():
    assert parse_config(MINIMAL + "target:\n  rotate_chap: never\n").target.rotate_chap == "never"
    assert error_of(MINIMAL + "target:\n  rotate_chap: daily\n").key == "target.rotate_chap"


def test_storage_rbd_is_a_nested_mapping_of_typed_keys(config_text: str) -> None:
    config = parse_config(config_text + "  backend: rbd\n  rbd:\n    pool: roots\n"
                          "    ceph_conf: /etc/ceph/lab.conf\n")
    assert config.storage.backend is StorageKind.RBD
    assert config.storage.rbd == RbdConfig(pool="roots", ceph_conf=Path("/etc/ceph/lab.conf"))


def test_an_unknown_key_under_storage_rbd_names_its_line(config_text: str) -> None:
    with pytest.raises(ConfigError, match=r":10: storage\.rbd\.pol: unknown key; did you mean "
                                          "'pool'"):
        parse_config(config_text + "  rbd:\n    pol: roots\n")


def test_an_rbd_pool_name_tgt_cannot_carry_is_refused(config_text: str) -> None:
    with pytest.raises(ConfigError, match=r"storage\.rbd\.pool: 'a;b' is empty or holds ;"):
        parse_config(config_text + "  rbd:\n    pool: a;b\n")


def test_the_inventory_is_sqlite_in_the_state_dir_by_default():
    config = parse_config(MINIMAL)
    assert config.inventory.url is None and config.inventory.password_file is None


def test_a_postgresql_inventory_url_and_password_file_are_read():
    config = parse_config(MINIMAL + "inventory:\n  url: postgresql://netboot@db1/netboot\n"
                          "  password_file: /etc/netboot/db-password\n")
    assert config.inventory.url == "postgresql://netboot@db1/netboot"
    assert config.inventory.password_file == Path("/etc/netboot/db-password")


@pytest.mark.parametrize("url", ["postgresql://netboot:s3cret@db1/netboot",
                                 "postgresql://db1/netboot?password=s3cret"])
def test_a_password_in_the_inventory_url_is_refused_without_repeating_it(url: str):
    err = error_of(MINIMAL + f"inventory:\n  url: {url}\n")
    assert (err.line, err.key) == (6, "inventory.url")
    assert "password_file" in err.message and "s3cret" not in str(err)


def test_an_inventory_url_that_is_not_postgresql_is_refused():
    err = error_of(MINIMAL + "inventory:\n  url: mysql://db1/netboot\n")
    assert err.key == "inventory.url" and "PostgreSQL" in err.message


def test_a_password_file_without_an_inventory_url_is_refused():
    err = error_of(MINIMAL + "inventory:\n  password_file: /etc/netboot/db-password\n")
    assert err.key == "inventory.password_file"
FAILOVER = MINIMAL + """\
target:
  portal_address: 198.18.0.100
  failover:
    enabled: true
    virtual_router_id: 40
    peer_storage_address: 198.19.254.3
storage:
  backend: rbd
"""


def test_target_failover_is_off_by_default():
    config = parse_config(MINIMAL)
    assert not config.target.failover.enabled
    assert config.vrrp_interface == "eth0"


def test_target_failover_is_a_nested_mapping_of_typed_keys():
    config = parse_config(FAILOVER.replace("    enabled", "    priority: 150\n"
                                           "    vrrp_interface: vlan7\n    enabled"))
    failover = config.target.failover
    assert failover.enabled and failover.virtual_router_id == 40 and failover.priority == 150
    assert failover.peer_storage_address == IPv4Address("198.19.254.3")
    assert config.vrrp_interface == "vlan7"
    assert effective_config(config)["target"]["failover"]["vrrp_interface"] == "vlan7"


def test_a_virtual_router_id_out_of_range_names_its_line():
    err = error_of(FAILOVER.replace("id: 40", "id: 256"))
    assert (err.line, err.key) == (9, "target.failover.virtual_router_id")
    assert "expected 1-255" in str(err)


def test_failover_without_a_peer_storage_address_is_refused_at_the_failover_line():
    err = error_of(FAILOVER.replace("    peer_storage_address: 198.19.254.3\n", ""))
    assert (err.line, err.key) == (7, "target.failover.peer_storage_address")


def test_failover_needs_a_portal_address_of_its_own():
    err = error_of(FAILOVER.replace("198.18.0.100", "198.18.0.1"))
    assert err.key == "target.portal_address" and "address of its own" in str(err)


def test_a_floating_portal_outside_the_boot_subnet_is_refused():
    err = error_of(FAILOVER.replace("198.18.0.100", "198.18.9.100"))
    assert err.key == "target.portal_address" and "not in dhcp.subnet" in str(err)


def test_failover_needs_rbd_storage():
    err = error_of(FAILOVER.replace("  backend: rbd\n", "  backend: file\n"))
    assert err.key == "target.failover.enabled" and "storage.backend: rbd" in str(err)


V6_ONLY = MINIMAL + '  mode: "off"\ndhcp6:\n  subnet: fd4e:6574:626f:1::/64\n'


def test_an_ipv6_only_vlan_gives_clients_the_servers_ipv6_address_everywhere():
    config = parse_config(V6_ONLY)
    assert config.ipv6_only and str(config.boot_address) == "fd4e:6574:626f:1::1"
    assert str(config.portal[0]) == "fd4e:6574:626f:1::1"
    assert str(config.ipv6_of(IPv4Address("198.18.0.10"))) == "fd4e:6574:626f:1::a"


def test_dhcp6_needs_dhcp_mode_off():
    err = error_of(MINIMAL + "dhcp6:\n  subnet: fd4e:6574:626f:1::/64\n")
    assert err.key == "dhcp6.subnet" and "dhcp.mode" in err.message


def test_dhcp6_address_must_not_be_a_clients():
    err = error_of(V6_ONLY + "  address: fd4e:6574:626f:1::a\n")
    assert err.key == "dhcp6.address" and "198.18.0.10" in err.message


def test_dhcp6_subnet_smaller_than_the_ipv4_one_is_refused():
    err = error_of(V6_ONLY.replace("::/64", "::/121"))
    assert err.key == "dhcp6.subnet" and "fewer addresses" in err.message

"""A real Redfish BMC for tests: sushy-tools' ``sushy-emulator`` with its fake systems
driver, serving HTTPS with a certificate a CA of the test's signed, and HTTP basic
authentication from an htpasswd file (bcrypt: the password itself is in no file and on
no command line), in a network namespace of its own (tests.support.bmc's management
network).

The fake driver applies a power change 1 to 11 s after it is asked (``hardware actions
are not immediate``), so tests wait for the state they expect; what it was asked is in
its log (the emulator's INFO lines: ``power state set to "ForceRestart"``).
"""

from __future__ import annotations

import base64
import json
import ssl
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path

import bcrypt

from netboot.host import iproute
from netboot.power.bmc import Bmc, BmcKind
from tests.support.bmc import stop, wait_listening

PORT = 8443
USER = "admin"
SYSTEM_UUID = "8a4f0b52-5f0e-4c1b-9d0e-6f1e2a3b4c5d"


@dataclass(frozen=True)
class Certificates:
    ca: Path  # the CA's certificate (PEM): what --bmc-ca-file is given
    cert: Path  # the BMC's, for its address, signed by the CA
    key: Path


def make_certificates(directory: Path, address: IPv4Address) -> Certificates:
    """A CA and a certificate for ``address`` it signed (P-256, valid 2 days), by openssl."""
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key = directory / "ca.pem", directory / "ca.key"
    cert, key, csr = directory / "bmc.pem", directory / "bmc.key", directory / "bmc.csr"
    ext = directory / "bmc.ext"
    ext.write_text(f"subjectAltName=IP:{address}\nbasicConstraints=CA:FALSE\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    for argv in (["openssl", "req", "-x509", *ec, "-days", "2", "-subj", "/CN=netboot test CA",
                  "-keyout", str(ca_key), "-out", str(ca)],
                 ["openssl", "req", *ec, "-subj", "/CN=test BMC", "-keyout", str(key),
                  "-out", str(csr)],
                 ["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey",
                  str(ca_key), "-CAcreateserial", "-days", "2", "-extfile", str(ext),
                  "-out", str(cert)]):
        subprocess.run(argv, check=True, capture_output=True, stdin=subprocess.DEVNULL)
    return Certificates(ca, cert, key)


@dataclass(frozen=True)
class EmulatedBmc:
    bmc: Bmc  # how to reach it, with its password and CA
    directory: Path
    certificates: Certificates

    @property
    def log(self) -> str:
        return (self.directory / "emulator.log").read_text()

    def system(self) -> dict:
        """Its system's resource, as the emulator serves it (GET over HTTPS)."""
        context = ssl.create_default_context(cafile=str(self.certificates.ca))
        request = urllib.request.Request(
            f"https://{self.bmc.address}:{self.bmc.port}/redfish/v1/Systems/{SYSTEM_UUID}",
            headers={"Authorization": "Basic " + base64.b64encode(
                f"{self.bmc.username}:{self.bmc.password}".encode()).decode()})
        with urllib.request.urlopen(request, context=context, timeout=30) as answer:
            return json.load(answer)


def _config(directory: Path, address: IPv4Address, certificates: Certificates,
            systems: int) -> str:
    """The emulator's configuration (a Python file Flask reads); INFO lines logged."""
    fake = [{"uuid": SYSTEM_UUID if i == 0 else f"{SYSTEM_UUID[:-1]}{i}", "name": f"node{i}",
             "power_state": "Off", "nics": [{"mac": f"52:54:00:00:0f:0{i}", "ip": "198.18.0.9"}]}
            for i in range(systems)]
    return (f"import logging\n"
            f"logging.getLogger().setLevel(logging.INFO)  # the app's: what it was asked\n"
            f"SUSHY_EMULATOR_LISTEN_IP = {str(address)!r}\n"
            f"SUSHY_EMULATOR_LISTEN_PORT = {PORT}\n"
            f"SUSHY_EMULATOR_SSL_CERT = {str(certificates.cert)!r}\n"
            f"SUSHY_EMULATOR_SSL_KEY = {str(certificates.key)!r}\n"
            f"SUSHY_EMULATOR_AUTH_FILE = {str(directory / 'htpasswd')!r}\n"
            f"SUSHY_EMULATOR_FAKE_DRIVER = True\n"
            f"SUSHY_EMULATOR_FAKE_SYSTEMS = {fake!r}\n"
            f"SUSHY_EMULATOR_STATE_DIR = {str(directory / 'state')!r}\n")


@contextmanager
def emulated_bmc(netns: str, address: IPv4Interface, directory: Path, password: str, *,
                 systems: int = 1) -> Iterator[EmulatedBmc]:
    """sushy-emulator in ``netns`` on ``address``:8443 (HTTPS), user admin with
    ``password``, serving ``systems`` fake systems, all off."""
    directory.mkdir(parents=True, exist_ok=True)
    certificates = make_certificates(directory / "tls", address.ip)
    digest = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    (directory / "htpasswd").write_text(f"{USER}:{digest}\n")
    config = directory / "emulator.conf"
    config.write_text(_config(directory, address.ip, certificates, systems))
    with (directory / "emulator.log").open("wb") as log:
        proc = subprocess.Popen(
            iproute.in_netns(netns, [sys.executable, "-m", "sushy_tools.emulator.main",
                                     "--config", str(config)]),
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
    try:
        wait_listening(netns, PORT, proc, directory / "emulator.log", tcp=True)
        bmc = Bmc(str(address.ip), USER, password, PORT, BmcKind.REDFISH,
                  ca_pem=certificates.ca.read_text())
        yield EmulatedBmc(bmc, directory, certificates)
    finally:
        stop(proc)

"""A real MQTT broker for the tests: Debian's Mosquitto 2.0 on a free loopback port.

Each broker gets its own folder with a throw-away certificate authority, a broker certificate for
127.0.0.1, client certificates whose common name is the MQTT user name
(``use_identity_as_username``), an ACL file with the per-hub layout docs/fleet.md describes, and
persistence, so a restart keeps the queued messages of persistent sessions. Mosquitto is installed
by ``./install.sh --test``; without it the tests fail with a one-line reason, never skip.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import signal
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.configs import free_port

MOSQUITTO = "/usr/sbin/mosquitto"

# Hubs publish only under their own name and read only their own config; the platform reads
# every hub's readings and status and writes configs. This is the layout docs/fleet.md gives.
ACL = """\
pattern write hubs/%u/readings/#
pattern readwrite hubs/%u/status
pattern read hubs/%u/config
user platform
topic read hubs/#
topic write hubs/+/config
"""


@dataclass(frozen=True)
class ClientFiles:
    """The files a client needs for mutual TLS with the broker."""

    ca_file: Path
    cert_file: Path
    key_file: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


class TestAuthority:
    """A certificate authority that lives for one broker's folder."""

    __test__ = False  # a helper, not a test class

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(_name("health-gateway test CA"))
            .issuer_name(_name("health-gateway test CA"))
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self.ca_file = folder / "ca.pem"
        self.ca_file.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, common_name: str, *, server: bool = False) -> ClientFiles:
        """A certificate and key for ``common_name`` (a server certificate names 127.0.0.1)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1")),
                        x509.DNSName("localhost"),
                    ]
                ),
                critical=False,
            ).add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
        else:
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
            )
        cert = builder.sign(self._key, hashes.SHA256())
        cert_file = self.folder / f"{common_name}.crt"
        key_file = self.folder / f"{common_name}.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key, key_file)
        return ClientFiles(self.ca_file, cert_file, key_file)


class MosquittoBroker:
    """Mosquitto with TLS, client certificates and the per-hub ACL, on a free loopback port.

    ``async with MosquittoBroker(folder) as broker`` starts it; ``await broker.restart()`` stops it
    cleanly (it saves its persistence file) and starts it again on the same port.
    """

    def __init__(self, folder: Path) -> None:
        if not Path(MOSQUITTO).exists():
            raise RuntimeError(
                f"{MOSQUITTO} is missing: run ./install.sh --test (it installs Debian's mosquitto)"
            )
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.authority = TestAuthority(folder)
        server = self.authority.issue("broker", server=True)
        self.url = f"mqtts://127.0.0.1:{self.port}"
        (folder / "acl").write_text(ACL)
        (folder / "data").mkdir(exist_ok=True)
        (folder / "mosquitto.conf").write_text(
            "\n".join(
                [
                    "per_listener_settings false",
                    "persistence true",
                    f"persistence_location {folder / 'data'}/",
                    "autosave_interval 1",
                    "log_dest stderr",
                    "log_type error",
                    "log_type warning",
                    f"acl_file {folder / 'acl'}",
                    f"listener {self.port} 127.0.0.1",
                    f"cafile {server.ca_file}",
                    f"certfile {server.cert_file}",
                    f"keyfile {server.key_file}",
                    "require_certificate true",
                    "use_identity_as_username true",
                    "",
                ]
            )
        )
        if os.geteuid() == 0:
            # Started as root, Mosquitto would drop to the `mosquitto` user, which cannot enter
            # pytest's private temporary folders; a broker that lives for one test may stay root.
            conf = folder / "mosquitto.conf"
            conf.write_text("user root\n" + conf.read_text())
        self._process: asyncio.subprocess.Process | None = None
        self.log = folder / "mosquitto.log"

    def client(self, name: str) -> ClientFiles:
        """Certificate files for a client whose MQTT user name is ``name``."""
        files = self.authority.issue(name)
        return files

    async def start(self) -> None:
        log = self.log.open("ab")
        self._process = await asyncio.create_subprocess_exec(
            MOSQUITTO, "-c", str(self.folder / "mosquitto.conf"), stdout=log, stderr=log
        )
        log.close()
        await self._until_listening()

    async def _until_listening(self, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while True:
                assert self._process is not None
                if self._process.returncode is not None:
                    raise RuntimeError(f"mosquitto exited: {self.log.read_text()[-2000:]}")
                try:
                    _reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                except OSError:
                    await asyncio.sleep(0.02)  # polling a port that is not open yet
                    continue
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
                return

    async def stop(self) -> None:
        if self._process is None or self._process.returncode is not None:
            return
        self._process.send_signal(signal.SIGTERM)  # SIGTERM: Mosquitto saves its persistence file
        async with asyncio.timeout(10):
            await self._process.wait()

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def __aenter__(self) -> MosquittoBroker:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

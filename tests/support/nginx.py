"""Debian's nginx run as a plain process (no system service) with deploy/nginx/fidelia.conf,
its ports, certificate and upstreams substituted: the production front, on loopback."""

import datetime
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.postgres import free_port

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "nginx"


def nginx_binary() -> str:
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if found is None:
        raise RuntimeError("nginx missing: run scripts/ensure-services.sh")
    return found


def self_signed(directory: Path, host: str = "loyalty.example.com") -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class Nginx:
    def __init__(self, upstream_ports: list[int]) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="fidelia-nginx-"))
        self.http_port, self.https_port = free_port(), free_port()
        self.url = f"https://127.0.0.1:{self.https_port}"
        cert, key = self_signed(self.dir)
        site = (DEPLOY / "fidelia.conf").read_text()
        servers = "\n".join(
            f"    server 127.0.0.1:{port} max_fails=1 fail_timeout=2s;" for port in upstream_ports
        )
        lines = []
        for line in site.splitlines():
            stripped = line.strip()
            if stripped.startswith("server 127.0.0.1:800"):
                if servers:
                    lines.append(servers)
                    servers = ""
                continue
            if stripped.startswith("listen [::]"):
                continue
            lines.append(line)
        site = "\n".join(lines)
        site = site.replace("listen 80;", f"listen 127.0.0.1:{self.http_port};")
        site = site.replace("listen 443 ssl", f"listen 127.0.0.1:{self.https_port} ssl")
        site = site.replace(
            "/etc/letsencrypt/live/loyalty.example.com/fullchain.pem", str(cert)
        ).replace("/etc/letsencrypt/live/loyalty.example.com/privkey.pem", str(key))
        site = site.replace("/etc/nginx/fidelia_proxy.conf", str(self.dir / "fidelia_proxy.conf"))
        shutil.copy(DEPLOY / "fidelia_proxy.conf", self.dir / "fidelia_proxy.conf")
        (self.dir / "fidelia.conf").write_text(site)
        user = "user root root;\n" if os.geteuid() == 0 else ""
        temp = " ".join(
            f"{kind}_temp_path {self.dir}/{kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        (self.dir / "nginx.conf").write_text(
            f"{user}worker_processes 1;\nerror_log {self.dir}/error.log;\n"
            f"pid {self.dir}/nginx.pid;\nevents {{ worker_connections 512; }}\n"
            f"http {{\n  access_log {self.dir}/access.log;\n  {temp}\n"
            f"  include {self.dir}/fidelia.conf;\n}}\n"
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> "Nginx":
        conf = str(self.dir / "nginx.conf")
        check = subprocess.run(
            [nginx_binary(), "-t", "-p", str(self.dir), "-c", conf],
            capture_output=True,
            text=True,
        )
        if check.returncode != 0:
            raise RuntimeError(f"nginx -t failed:\n{check.stderr}")
        self.process = subprocess.Popen(
            [nginx_binary(), "-p", str(self.dir), "-c", conf, "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{self.http_port}/", timeout=1)
                return self
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("nginx did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)

"""Fixtures for the black-box tests of a node's portal: two real `lien` daemons on 127.0.0.1.

Node A publishes three datasets (flags, a datapackage.json, and `lien import ckan`); node B
joins through A, learns the catalog by gossip/catalog sync, and serves its read-only portal on a
separate listener (`[api] portal_listen`). B mirrors A's publisher (`mirror_publishers`): a
portal fetches from peers only datasets its node holds or mirrors, never whatever id a visitor
asks for. Nothing here is mocked: the tests talk HTTP to the
daemons, as ckanapi, rdflib and Chromium would in the field.
"""

import json
import os
import shutil
import signal
import random
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
LIEN = os.environ.get("LIEN_BIN", str(ROOT / "target" / "debug" / "lien"))
ARTIFACTS = Path(os.environ.get("LIEN_TEST_ARTIFACTS", ROOT / "target" / "test-artifacts"))


def free_port():
    """A free port below the kernel's ephemeral range: a port the kernel handed out for port 0
    and we closed again can be handed to the daemon's own `/tcp/0` listener before the portal
    binds it (seen in CI: "cannot listen for the portal ... Address already in use")."""
    low = 32768
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        pass
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(max(1024, low // 2), low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free port below the ephemeral range after 200 tries")


def lien(home, *args, check=True):
    r = subprocess.run([LIEN, "--home", str(home), *args], capture_output=True, text=True, timeout=120)
    if check and r.returncode != 0:
        raise AssertionError(f"lien {' '.join(args)} failed ({r.returncode}): {r.stderr}")
    return r


def wait_for(what, fn, timeout=60.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            v = fn()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - keep polling, report the last failure
            last = e
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what} (last error: {last!r})")


class Daemon:
    def __init__(self, home, log, extra_args=(), config="", mirror=()):
        self.home = Path(home)
        self.home.mkdir(parents=True, exist_ok=True)
        lien(self.home, "init")
        toml = self.home / "lien.toml"
        text = toml.read_text(encoding="utf-8")
        if config:
            # `lien init` writes a commented lien.toml with an [api] table: add the keys there.
            assert "\n[api]\n" in text, "lien init wrote no [api] table"
            text = text.replace("\n[api]\n", "\n[api]\n" + config, 1)
        if mirror:
            # ... and `mirror_publishers = []` in its [node] table (a TOML array of strings is JSON).
            assert "\nmirror_publishers = []\n" in text, "lien init wrote no mirror_publishers"
            text = text.replace("\nmirror_publishers = []\n", f"\nmirror_publishers = {json.dumps(list(mirror))}\n", 1)
        toml.write_text(text, encoding="utf-8")
        self.log = open(log, "w", encoding="utf-8")
        self.proc = subprocess.Popen(
            [LIEN, "--home", str(self.home), "daemon", "--listen", "/ip4/127.0.0.1/tcp/0", "--api", "127.0.0.1:0",
             *extra_args],
            stdout=self.log, stderr=subprocess.STDOUT,
        )
        info = wait_for("daemon.json of " + str(self.home), self._info, 60)
        self.api = "http://" + info["api"]
        self.status = json.loads(lien(self.home, "--json", "status").stdout)

    def _info(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"daemon exited with {self.proc.returncode}; see {self.log.name}")
        p = self.home / "daemon.json"
        return json.loads(p.read_text()) if p.exists() else None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


def write_files(folder, files):
    for rel, data in files.items():
        p = Path(folder) / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data if isinstance(data, bytes) else data.encode())


@pytest.fixture(scope="session")
def net():
    if not os.path.exists(LIEN):
        raise AssertionError(f"no lien binary at {LIEN} (build it with cargo build -p lien, or set LIEN_BIN)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="lien-py-"))
    daemons = []
    try:
        a = Daemon(tmp / "a", ARTIFACTS / "node-a.log")
        daemons.append(a)
        portal_port = free_port()
        boot = a.status["listen_addrs"][0]
        b = Daemon(tmp / "b", ARTIFACTS / "node-b.log", ["--bootstrap", boot],
                   config=f'portal_listen = "127.0.0.1:{portal_port}"\nportal_title = "Cổng dữ liệu B"\n',
                   mirror=[a.status["publisher"]])
        daemons.append(b)
        b.portal = f"http://127.0.0.1:{portal_port}"

        # 1. Flags: a multi-chunk CSV (3 chunks of 64 KiB) and a note in a subfolder.
        census = tmp / "src" / "census"
        rows = "".join(f"{i},{i * 7 % 1000},Hà Nội\n" for i in range(20000))
        write_files(census, {"population.csv": "id,value,province\n" + rows, "docs/notes.txt": "Ghi chú: dân số\n"})
        lien(a.home, "publish", str(census), "--name", "census-2024", "--title", "Population census 2024",
             "--description", "People counted by province.\nSecond line.", "--license", "CC-BY-4.0",
             "--keyword", "population", "--keyword", "census", "--organisation", "General Statistics Office",
             "--theme", "Society", "--spatial", "Việt Nam", "--temporal", "2019/2024",
             "--contact", "data@gso.gov.vn", "--language", "vi", "--language", "en", "--chunk-size", "65536")
        # 2. Metadata from datapackage.json.
        budget = tmp / "src" / "budget"
        write_files(budget, {
            "budget.csv": "year,amount\n2023,1\n2024,2\n",
            "datapackage.json": json.dumps({
                "name": "state-budget", "title": "State budget", "description": "Revenue and spending.",
                "keywords": ["finance", "budget"], "licenses": [{"name": "ODbL-1.0"}],
                "contributors": [{"title": "Ministry of Finance", "role": "publisher", "email": "open@mof.gov.vn"}],
                "temporal": {"start": "2023", "end": "2024"},
                "resources": [{"path": "budget.csv", "format": "csv"}],
            }),
        })
        lien(a.home, "publish", str(budget))
        # 3. A CKAN package and its downloaded resources.
        downloads = tmp / "src" / "ckan-downloads"
        write_files(downloads, {"air-2024.csv": "station,pm25\nHN01,41\n", "stations.json": "[{\"id\":\"HN01\"}]"})
        package = {
            "help": "...", "success": True,
            "result": {
                "name": "air-quality", "title": "Air quality 2024", "notes": "Hourly PM2.5 by station.",
                "license_id": "CC-BY-4.0", "tags": [{"name": "environment"}, {"name": "air"}],
                "organization": {"name": "monre", "title": "Ministry of Natural Resources and Environment"},
                "groups": [{"name": "environment", "title": "Environment"}],
                "maintainer_email": "air@monre.gov.vn",
                "extras": [{"key": "spatial_text", "value": "Hà Nội"}, {"key": "language", "value": "vi"}],
                "resources": [
                    {"name": "Air 2024", "url": "https://portal.example/dataset/x/resource/1/download/air-2024.csv"},
                    {"name": "stations.json", "url": ""},
                ],
            },
        }
        pkg_file = tmp / "src" / "air.json"
        pkg_file.write_text(json.dumps(package))
        lien(a.home, "import", "ckan", str(pkg_file), "--data", str(downloads))

        wait_for("B to learn the three datasets", lambda: len(
            requests.get(b.portal + "/api/3/action/package_list", timeout=5).json()["result"]) == 3, 60)
        yield {"a": a, "b": b, "tmp": tmp, "census": census, "budget": budget, "downloads": downloads}
    finally:
        for d in daemons:
            d.stop()
        shutil.rmtree(tmp, ignore_errors=True)

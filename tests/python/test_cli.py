"""CLI additions around the portal: `lien status --watch`, and clear failures of imports."""

import json

import requests

from conftest import lien


def test_status_watch_prints_rates(net):
    r = lien(net["a"].home, "status", "--watch", "--interval", "1", "--count", "2")
    lines = [l for l in r.stdout.splitlines() if l.strip()]
    assert len(lines) == 2, r.stdout
    assert all(l.startswith("peers") and "/s" in l for l in lines)
    r = lien(net["a"].home, "--json", "status", "--watch", "--interval", "1", "--count", "1")
    s = json.loads(r.stdout)
    assert s["catalog"] == 3 and s["peers"] >= 1 and "rate_in" in s


def test_import_ckan_reports_missing_resources(net, tmp_path):
    pkg = tmp_path / "p.json"
    pkg.write_text(json.dumps({"name": "x-data", "title": "X", "resources": [{"name": "gone.csv", "url": ""}]}))
    r = lien(net["a"].home, "import", "ckan", str(pkg), "--data", str(tmp_path), check=False)
    assert r.returncode == 1
    assert "gone.csv" in r.stderr and "not found" in r.stderr
    pkg.write_text(json.dumps({"success": False, "error": {}}))
    r = lien(net["a"].home, "import", "ckan", str(pkg), "--data", str(tmp_path), check=False)
    assert r.returncode == 1 and "failed CKAN answer" in r.stderr


def test_publish_without_name_says_where_to_put_it(net, tmp_path):
    (tmp_path / "a.csv").write_text("a\n")
    r = lien(net["a"].home, "publish", str(tmp_path), "--title", "T", check=False)
    assert r.returncode == 1 and "--name" in r.stderr and "datapackage.json" in r.stderr
    (tmp_path / "datapackage.json").write_text("{not json")
    r = lien(net["a"].home, "publish", str(tmp_path), check=False)
    assert r.returncode == 1 and "datapackage.json" in r.stderr


def test_private_reads_need_the_token_and_other_hosts_get_421(net):
    a = net["a"]
    token = (a.home / "api.token").read_text().strip()
    for path in ("/v1/local", "/v1/peers", "/v1/audit"):
        assert requests.get(a.api + path, timeout=10).status_code == 401, path
        r = requests.get(a.api + path, headers={"Authorization": "Bearer " + token}, timeout=10)
        assert r.status_code == 200, (path, r.text)
    assert requests.get(a.api + "/v1/status", timeout=10).status_code == 200
    r = requests.get(a.api + "/v1/status", headers={"Host": "evil.example"}, timeout=10)
    assert r.status_code == 421 and r.json()["error"]["code"] == "misdirected_request"
    # `lien ls` reads /v1/local with the token.
    assert json.loads(lien(a.home, "--json", "ls").stdout)

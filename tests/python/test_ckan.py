"""The CKAN Action API subset, driven by the real `ckanapi` client as a black box."""

import blake3
import ckanapi
import pytest
import requests


def client(url, **kw):
    return ckanapi.RemoteCKAN(url, user_agent="lien-tests", **kw)


def names(net):
    return {p: client(net["a"].api).action.package_show(id=p) for p in client(net["a"].api).action.package_list()}


def by_title(packages, title):
    return next(p for p in packages.values() if p["title"] == title)


def test_package_list_and_show(net):
    pkgs = names(net)
    assert len(pkgs) == 3
    census = by_title(pkgs, "Population census 2024")
    assert census["name"].startswith("census-2024_")
    assert census["organization"]["title"] == "General Statistics Office"
    assert census["organization"]["name"] == "general-statistics-office"
    assert sorted(t["name"] for t in census["tags"]) == ["census", "population"]
    assert census["license_id"] == "CC-BY-4.0"
    assert census["notes"].startswith("People counted by province.")
    assert census["maintainer_email"] == "data@gso.gov.vn"
    assert census["num_resources"] == 2
    res = {r["name"]: r for r in census["resources"]}
    assert set(res) == {"population.csv", "docs/notes.txt"}
    csv = res["population.csv"]
    local = (net["census"] / "population.csv").read_bytes()
    assert csv["size"] == len(local)
    assert csv["format"] == "CSV"
    assert csv["mimetype"] == "text/csv"
    assert csv["hash"] == blake3.blake3(local).hexdigest()
    assert csv["url"].startswith(net["a"].api + "/d/" + census["id"] + "/")
    # The resource URL is the gateway: it serves the verified bytes.
    body = requests.get(csv["url"], timeout=30).content
    assert blake3.blake3(body).hexdigest() == csv["hash"]
    # Same package by publisher/slug and by manifest id.
    ck = client(net["a"].api)
    lien_name = next(e["value"] for e in census["extras"] if e["key"] == "lien_name")
    assert ck.action.package_show(id=lien_name)["id"] == census["id"]
    assert ck.action.package_show(id=census["id"])["name"] == census["name"]


def test_imports_mapped_metadata(net):
    pkgs = names(net)
    budget = by_title(pkgs, "State budget")  # from datapackage.json
    assert budget["name"].startswith("state-budget_")
    assert budget["organization"]["title"] == "Ministry of Finance"
    assert budget["license_id"] == "ODbL-1.0"
    assert {r["name"] for r in budget["resources"]} == {"budget.csv", "datapackage.json"}
    air = by_title(pkgs, "Air quality 2024")  # from `lien import ckan`
    assert air["name"].startswith("air-quality_")
    assert air["organization"]["title"] == "Ministry of Natural Resources and Environment"
    assert sorted(t["name"] for t in air["tags"]) == ["air", "environment"]
    assert [g["title"] for g in air["groups"]] == ["Environment"]
    assert air["maintainer_email"] == "air@monre.gov.vn"
    extras = {e["key"]: e["value"] for e in air["extras"]}
    assert extras["spatial_text"] == "Hà Nội" and extras["language"] == "vi"
    files = {r["name"]: r for r in air["resources"]}
    assert set(files) == {"air-2024.csv", "stations.json"}
    local = (net["downloads"] / "air-2024.csv").read_bytes()
    assert files["air-2024.csv"]["hash"] == blake3.blake3(local).hexdigest()


def test_package_search(net):
    ck = client(net["a"].api)
    r = ck.action.package_search(q="population")
    assert r["count"] == 1 and r["results"][0]["title"] == "Population census 2024"
    assert ck.action.package_search(q="popul")["count"] == 1, "a query word matches as a prefix"
    assert ck.action.package_search(q="*:*")["count"] == 3
    r = ck.action.package_search(fq="organization:ministry-of-finance")
    assert [p["title"] for p in r["results"]] == ["State budget"]
    r = ck.action.package_search(fq='tags:air +license_id:"CC-BY-4.0"')
    assert [p["title"] for p in r["results"]] == ["Air quality 2024"]
    assert ck.action.package_search(q="census", fq="license_id:ODbL-1.0")["count"] == 0
    r = ck.action.package_search(sort="title_string asc", rows=2, start=0)
    assert r["count"] == 3
    assert [p["title"] for p in r["results"]] == ["Air quality 2024", "Population census 2024"]
    r2 = ck.action.package_search(sort="title_string asc", rows=2, start=2)
    assert [p["title"] for p in r2["results"]] == ["State budget"]
    r = ck.action.package_search(**{"facet.field": ["organization", "tags", "license_id", "res_format"], "rows": 0})
    assert r["results"] == []
    assert r["facets"]["license_id"] == {"CC-BY-4.0": 2, "ODbL-1.0": 1}
    assert r["facets"]["organization"]["general-statistics-office"] == 1
    assert r["facets"]["res_format"]["CSV"] == 3
    items = {i["name"]: i["count"] for i in r["search_facets"]["tags"]["items"]}
    assert items["population"] == 1 and items["finance"] == 1


def test_organization_list(net):
    ck = client(net["a"].api)
    assert ck.action.organization_list() == [
        "general-statistics-office", "ministry-of-finance", "ministry-of-natural-resources-and-environment"]
    full = ck.action.organization_list(all_fields=True)
    assert {o["title"]: o["package_count"] for o in full}["Ministry of Finance"] == 1
    assert ck.action.organization_show(id="ministry-of-finance")["title"] == "Ministry of Finance"


def test_errors_are_ckan_shaped(net):
    ck = client(net["a"].api)
    with pytest.raises(ckanapi.NotFound):
        ck.action.package_show(id="no-such-dataset")
    with pytest.raises(ckanapi.NotAuthorized):
        ck.action.package_create(name="x", title="y")
    with pytest.raises(ckanapi.SearchQueryError):
        ck.action.package_search(fq="size:3")
    with pytest.raises(ckanapi.ValidationError):
        ck.action.package_show()


def test_second_node_portal_serves_and_replicates(net):
    """B's portal listener (no token, read-only) lists A's datasets; its gateway serves the file
    B fetched from A (B mirrors A's publisher), verified, the same bytes; GET-only clients work
    too. It fetches nothing B neither holds nor mirrors."""
    b = net["b"]
    ck = client(b.portal, get_only=True)
    r = ck.action.package_search(q="census")
    assert r["count"] == 1
    pkg = r["results"][0]
    csv = next(res for res in pkg["resources"] if res["name"] == "population.csv")
    assert csv["url"].startswith(b.portal + "/d/")
    body = requests.get(csv["url"], timeout=60).content
    assert blake3.blake3(body).hexdigest() == csv["hash"]
    assert body == (net["census"] / "population.csv").read_bytes()
    # The portal listener has no private API and no metrics.
    assert requests.get(b.portal + "/v1/status", timeout=5).status_code == 404
    assert requests.post(b.portal + "/v1/publish", json={}, timeout=5).status_code in (404, 405)
    assert requests.get(b.portal + "/metrics", timeout=5).status_code == 404
    # An id B neither holds nor mirrors is refused at once, not looked for among peers.
    r = requests.get(b.portal + "/d/" + "0" * 64 + "/x.csv", timeout=10)
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert ck.action.status_show()["site_title"] == "Cổng dữ liệu B"

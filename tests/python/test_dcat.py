"""The DCAT-AP 3 export, parsed by rdflib (JSON-LD and Turtle) and checked triple by triple."""

import blake3
import pytest
import requests
from rdflib import Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCAT, DCTERMS, FOAF, RDF, XSD

SPDX = Namespace("http://spdx.org/rdf/terms#")
BLAKE3 = URIRef("http://spdx.org/rdf/terms#checksumAlgorithm_blake3")


def load(url, fmt):
    r = requests.get(url, timeout=30)
    assert r.status_code == 200, r.text
    g = Graph()
    g.parse(data=r.text, format=fmt, publicID=url)
    return g, r.headers["content-type"]


@pytest.fixture(scope="module", params=["json-ld", "turtle"])
def graph(net, request):
    path = "/catalog.jsonld" if request.param == "json-ld" else "/catalog.ttl"
    g, ctype = load(net["b"].portal + path, request.param)
    assert ctype.startswith("application/ld+json" if request.param == "json-ld" else "text/turtle")
    return g


def test_catalog(graph, net):
    catalogs = list(graph.subjects(RDF.type, DCAT.Catalog))
    assert len(catalogs) == 1
    c = catalogs[0]
    assert graph.value(c, DCTERMS.title) == Literal("Cổng dữ liệu B")
    assert graph.value(c, DCTERMS.description) is not None
    assert graph.value(c, DCTERMS.publisher) is not None
    assert (graph.value(c, DCTERMS.modified)).datatype == XSD.dateTime
    assert len(list(graph.objects(c, DCAT.dataset))) == 3


def test_datasets_have_mandatory_and_recommended_properties(graph):
    datasets = list(graph.subjects(RDF.type, DCAT.Dataset))
    assert len(datasets) == 3
    for d in datasets:
        for p in (DCTERMS.title, DCTERMS.description, DCTERMS.publisher, DCAT.distribution, DCTERMS.identifier):
            assert graph.value(d, p) is not None, (d, p)
        assert graph.value(graph.value(d, DCTERMS.publisher), FOAF.name) is not None
    census = next(d for d in datasets if str(graph.value(d, DCTERMS.title)) == "Population census 2024")
    assert {str(k) for k in graph.objects(census, DCAT.keyword)} == {"population", "census"}
    assert str(graph.value(graph.value(census, DCTERMS.publisher), FOAF.name)) == "General Statistics Office"
    contact = graph.value(census, DCAT.contactPoint)
    assert graph.value(contact, URIRef("http://www.w3.org/2006/vcard/ns#hasEmail")) == URIRef("mailto:data@gso.gov.vn")
    period = graph.value(census, DCTERMS.temporal)
    assert graph.value(period, DCAT.startDate) == Literal("2019", datatype=XSD.gYear)
    assert graph.value(period, DCAT.endDate) == Literal("2024", datatype=XSD.gYear)
    assert graph.value(census, DCTERMS.spatial) is not None
    assert graph.value(census, DCAT.theme) is not None
    langs = set(graph.objects(census, DCTERMS.language))
    assert URIRef("http://publications.europa.eu/resource/authority/language/VIE") in langs


def test_distributions_download_and_checksum(graph, net):
    census = next(d for d in graph.subjects(RDF.type, DCAT.Dataset)
                  if str(graph.value(d, DCTERMS.title)) == "Population census 2024")
    dists = list(graph.objects(census, DCAT.distribution))
    assert len(dists) == 2
    local = (net["census"] / "population.csv").read_bytes()
    seen = 0
    for dist in dists:
        assert (dist, RDF.type, DCAT.Distribution) in graph
        url = graph.value(dist, DCAT.downloadURL)
        assert isinstance(url, URIRef) and str(url).startswith(net["b"].portal + "/d/")
        assert graph.value(dist, DCAT.accessURL) is not None
        size = graph.value(dist, DCAT.byteSize)
        assert size.datatype == XSD.nonNegativeInteger
        checksum = graph.value(dist, SPDX.checksum)
        assert (checksum, RDF.type, SPDX.Checksum) in graph
        assert graph.value(checksum, SPDX.algorithm) == BLAKE3
        value = graph.value(checksum, SPDX.checksumValue)
        assert value.datatype == XSD.hexBinary
        assert graph.value(dist, DCTERMS.license) == URIRef("http://spdx.org/licenses/CC-BY-4.0")
        if str(url).endswith("/population.csv"):
            seen += 1
            assert int(size) == len(local)
            assert str(value).lower() == blake3.blake3(local).hexdigest()
            assert graph.value(dist, DCTERMS.format) == URIRef(
                "http://publications.europa.eu/resource/authority/file-type/CSV")
            body = requests.get(str(url), timeout=60).content
            assert blake3.blake3(body).hexdigest() == str(value).lower()
    assert seen == 1


def test_both_serialisations_hold_the_same_triples(net):
    ld, _ = load(net["b"].portal + "/catalog.jsonld", "json-ld")
    ttl, _ = load(net["b"].portal + "/catalog.ttl", "turtle")
    assert len(ld) == len(ttl) > 50
    from rdflib.compare import isomorphic
    assert isomorphic(ld, ttl)


HYDRA = Namespace("http://www.w3.org/ns/hydra/core#")


@pytest.mark.parametrize("path,fmt", [("/catalog.jsonld", "json-ld"), ("/catalog.ttl", "turtle")])
def test_large_catalogs_are_paged_with_hydra_links(net, path, fmt):
    base = net["b"].portal + path
    first, _ = load(base + "?page=1&page_size=2", fmt)
    catalog = next(first.subjects(RDF.type, DCAT.Catalog))
    assert len(list(first.objects(catalog, DCAT.dataset))) == 2
    view = next(first.subjects(RDF.type, HYDRA.PartialCollectionView))
    assert int(first.value(view, HYDRA.totalItems)) == 3
    nxt = first.value(view, HYDRA.next)
    assert nxt is not None and first.value(view, HYDRA.previous) is None
    second, _ = load(str(nxt), fmt)
    catalog2 = next(second.subjects(RDF.type, DCAT.Catalog))
    page2 = set(second.objects(catalog2, DCAT.dataset))
    assert len(page2) == 1 and not page2 & set(first.objects(catalog, DCAT.dataset))
    view2 = next(second.subjects(RDF.type, HYDRA.PartialCollectionView))
    assert second.value(view2, HYDRA.next) is None and second.value(view2, HYDRA.previous) is not None
    assert requests.get(base + "?page=0", timeout=30).status_code == 400
    assert requests.get(base + "?page_size=100000", timeout=30).status_code == 400

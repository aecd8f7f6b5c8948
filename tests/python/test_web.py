"""The web page in headless Chromium (Debian's chromium + chromedriver, driven by Selenium):
load, search, filter by a facet, open a dataset, download a file and compare its BLAKE3 hash;
and the same reading path with JavaScript turned off. Screenshots go to the test artefacts."""

import os
import shutil
import tempfile
import time
from pathlib import Path

import blake3
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from conftest import ARTIFACTS, wait_for

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def browser(download_dir, javascript=True):
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="lien-chromium-")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1280,1000", f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    prefs = {"download.default_directory": str(download_dir), "download.prompt_for_download": False,
             "safebrowsing.enabled": False}
    if not javascript:
        prefs["profile.managed_default_content_settings.javascript"] = 2
    opts.add_experimental_option("prefs", prefs)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(60)
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(download_dir)})
    driver._lien_profile = profile
    return driver


@pytest.fixture()
def downloads():
    d = Path(tempfile.mkdtemp(prefix="lien-downloads-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def close(driver):
    profile = driver._lien_profile
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def test_search_open_download_verify(net, downloads):
    portal = net["b"].portal  # node B: the file must come from A through B's gateway
    driver = browser(downloads)
    try:
        driver.get(portal + "/")
        assert "Datasets" in driver.title
        assert driver.find_element(By.ID, "result-count").text.startswith("3 datasets")
        box = driver.find_element(By.NAME, "q")
        box.send_keys("population")
        driver.find_element(By.ID, "search-button").click()
        wait_for("search results", lambda: driver.find_element(By.ID, "result-count").text.startswith("1 dataset"))
        results = driver.find_elements(By.CSS_SELECTOR, "li.dataset h2 a")
        assert [r.text for r in results] == ["Population census 2024"]
        # Facets count the matches; following one filters.
        driver.get(portal + "/")
        facet = driver.find_element(By.CSS_SELECTOR, "a.facet[data-field=organization][href*=ministry-of-finance]")
        facet.click()
        wait_for("facet filter", lambda: driver.find_element(By.ID, "result-count").text.startswith("1 dataset"))
        assert driver.find_element(By.CSS_SELECTOR, "li.dataset h2 a").text == "State budget"

        driver.get(portal + "/?q=census")
        driver.find_element(By.LINK_TEXT, "Population census 2024").click()
        wait_for("dataset page", lambda: driver.find_element(By.ID, "dataset-title").text == "Population census 2024")
        cmd = driver.find_element(By.ID, "get-command").text
        assert cmd.startswith("lien get ") and cmd.endswith("/census-2024 -o ./census-2024")
        rows = driver.find_elements(By.CSS_SELECTOR, "#files tbody tr")
        assert len(rows) == 2
        row = next(r for r in rows if "population.csv" in r.text)
        shown_hash = row.find_element(By.CSS_SELECTOR, "code.hash").text
        page_text = driver.find_element(By.TAG_NAME, "body").text
        assert "Versions" in page_text and "Providers" in page_text
        driver.save_screenshot(str(ARTIFACTS / "portal-dataset.png"))
        row.find_element(By.CSS_SELECTOR, "a.download").click()
        target = downloads / "population.csv"
        wait_for("the download", lambda: target.exists() and not list(downloads.glob("*.crdownload")), 90)
        data = target.read_bytes()
        assert blake3.blake3(data).hexdigest() == shown_hash
        assert data == (net["census"] / "population.csv").read_bytes()
        driver.get(portal + "/node")
        assert "Peers (1)" in driver.find_element(By.TAG_NAME, "body").text
        driver.save_screenshot(str(ARTIFACTS / "portal-node.png"))
        driver.get(portal + "/?q=data")
        driver.save_screenshot(str(ARTIFACTS / "portal-search.png"))
    finally:
        close(driver)
    assert (ARTIFACTS / "portal-dataset.png").stat().st_size > 10_000


def test_reads_without_javascript(net, downloads):
    driver = browser(downloads, javascript=False)
    try:
        driver.get(net["a"].api + "/")
        box = driver.find_element(By.NAME, "q")
        box.send_keys("air")
        box.submit()
        wait_for("search results", lambda: driver.find_element(By.ID, "result-count").text.startswith("1 dataset"))
        driver.find_element(By.LINK_TEXT, "Air quality 2024").click()
        wait_for("dataset page", lambda: driver.find_element(By.ID, "dataset-title").text == "Air quality 2024")
        # The copy button is JavaScript's addition: hidden without it, the command is still there.
        assert not driver.find_element(By.CSS_SELECTOR, "button.copy").is_displayed()
        assert driver.find_element(By.ID, "get-command").text.startswith("lien get ")
        hashes = [h.text for h in driver.find_elements(By.CSS_SELECTOR, "code.hash")]
        local = (net["downloads"] / "air-2024.csv").read_bytes()
        assert blake3.blake3(local).hexdigest() in hashes
        driver.save_screenshot(str(ARTIFACTS / "portal-nojs.png"))
    finally:
        close(driver)

"""Staff work through the admin in a real browser: Debian's headless Chromium, driven by
Selenium through Debian's chromedriver, against the service under gunicorn.

Nothing is downloaded at test time: the browser and its driver are the Debian packages
`chromium` and `chromium-driver` (`make test` installs them), and the test fails, not
skips, without them. Each step leaves a screenshot in the test's temporary directory
(`screenshots/`); a failing test names it.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.live import LiveService
from tests.support.processes import child_env, run_manage

pytestmark = pytest.mark.django_db(transaction=True)  # the server reads committed rows

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
PASSWORD = "a browser-typed password 7"

HANDBOOK = """# Pottery studio handbook

## Opening hours

The studio opens at nine in the morning and closes at six in the evening, every day
except Sunday. Members with a key may stay until ten.

## Kilns

The bisque firing takes about eight hours and the kiln cools overnight. Glaze firings
reach cone six. Never open a kiln above one hundred degrees Celsius: the thermal shock
cracks the pots and can break the kiln's elements.

## Clay

Reclaimed clay goes in the blue bins by the wedging table. Porcelain is kept apart from
stoneware, because a little porcelain in stoneware clay makes it crack in the kiln.
"""


class Browser:
    """Headless Chromium with a screenshot after each step."""

    def __init__(self, driver: object, base_url: str, shots: Path) -> None:
        self.driver = driver
        self.base_url = base_url
        self.shots = shots
        self.numbers = itertools.count(1)

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[object]:
        try:
            yield self.driver
        except Exception as exc:
            shot = self._shoot(f"{name}-FAILED")
            exc.add_note(f"step {name!r} failed; screenshots of every step in {shot.parent}")
            raise
        self._shoot(name)

    def _shoot(self, name: str) -> Path:
        slug = re.sub(r"\W+", "-", name)
        path = self.shots / f"{next(self.numbers):02d}-{slug}.png"
        self.driver.save_screenshot(str(path))  # type: ignore[attr-defined]
        return path

    def open(self, path: str) -> None:
        self.driver.get(self.base_url + path)  # type: ignore[attr-defined]

    def follow(self, element: object) -> None:
        """Click something that loads a page, and wait until the new page has replaced
        the old one: without the wait, the next lookup can find an element of the old
        page (its search button, say) just before it goes away."""
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions
        from selenium.webdriver.support.ui import WebDriverWait

        old_page = self.driver.find_element(By.TAG_NAME, "html")  # type: ignore[attr-defined]
        element.click()  # type: ignore[attr-defined]
        WebDriverWait(self.driver, 30).until(expected_conditions.staleness_of(old_page))


@pytest.fixture
def browser(live_service: LiveService, tmp_path: Path) -> Iterator[Browser]:
    for program in (CHROMIUM, CHROMEDRIVER):
        assert shutil.which(program), (
            f"{program} is missing: install Debian's chromium and chromium-driver "
            "(`make test` does)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--window-size=1280,1600",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.implicitly_wait(10)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    try:
        yield Browser(driver, live_service.base_url, shots)
    finally:
        driver.quit()


def test_staff_add_find_read_ask_and_delete_a_document_in_a_browser(
    live_service: LiveService, child_database_url: str, browser: Browser, tmp_path: Path
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    env = child_env(DATABASE_URL=child_database_url, DATA_DIR=str(live_service.data_dir))
    # The first staff user, as the README tells a deployment to create it.
    created = run_manage(
        "createsuperuser",
        "--noinput",
        env={
            **env,
            "DJANGO_SUPERUSER_USERNAME": "ada",
            "DJANGO_SUPERUSER_EMAIL": "ada@example.com",
            "DJANGO_SUPERUSER_PASSWORD": PASSWORD,
        },
    )
    assert created.returncode == 0, created.stderr
    handbook = tmp_path / "studio-handbook.md"
    handbook.write_text(HANDBOOK)

    with browser.step("log in") as page:
        browser.open("/admin/login/?next=/admin/registry/document/")
        page.find_element(By.NAME, "username").send_keys("ada")
        page.find_element(By.NAME, "password").send_keys(PASSWORD)
        browser.follow(page.find_element(By.CSS_SELECTOR, "input[type=submit]"))
        assert page.find_element(By.ID, "user-tools").text.upper().startswith("WELCOME, ADA")

    with browser.step("add by upload") as page:
        browser.follow(page.find_element(By.CSS_SELECTOR, ".object-tools a.addlink"))
        page.find_element(By.NAME, "file").send_keys(str(handbook))
        browser.follow(page.find_element(By.NAME, "_save"))
        message = page.find_element(By.CSS_SELECTOR, ".messagelist .success").text
        assert message.startswith("Added studio-handbook.md:")

    with browser.step("the list fits a laptop's window") as page:
        long_name = "Glaze recipes for stoneware fired at cone six, with notes " * 3 + ".txt"
        status, _ = live_service.post_file(long_name, b"Glazes for stoneware at cone six.")
        assert status == 200
        page.set_window_size(1400, 900)
        browser.open("/admin/registry/document/")
        sideways = page.execute_script(
            "const e = document.documentElement; return e.scrollWidth - e.clientWidth;"
        )
        created = page.find_element(By.CSS_SELECTOR, "#result_list th.column-created_at")
        assert sideways <= 0 and created.location["x"] + created.size["width"] <= 1400
        page.set_window_size(1280, 1600)

    with browser.step("find by search") as page:
        browser.open("/admin/registry/document/")
        search = page.find_element(By.ID, "searchbar")
        search.send_keys("handbook")
        browser.follow(page.find_element(By.CSS_SELECTOR, "#changelist-search input[type=submit]"))
        rows = page.find_elements(By.CSS_SELECTOR, "#result_list tbody tr")
        assert len(rows) == 1 and "studio-handbook.md" in rows[0].text
        browser.follow(rows[0].find_element(By.LINK_TEXT, "studio-handbook.md"))

    with browser.step("open its chunks") as page:
        chunks = page.find_elements(By.CSS_SELECTOR, "#chunks tbody tr")
        assert chunks, "the document page shows no chunks"
        assert "bisque firing takes about eight hours" in page.find_element(By.ID, "chunks").text
        assert page.find_element(By.CSS_SELECTOR, "#agreement .agrees").text.startswith("Agrees")
        document_url = page.current_url

    with browser.step("ask") as page:
        browser.open("/admin/registry/document/")
        browser.follow(page.find_element(By.CSS_SELECTOR, 'a[href$="/document/ask/"]'))
        page.find_element(By.NAME, "q").send_keys("How long does the bisque firing take?")
        Select(page.find_element(By.NAME, "workspace")).select_by_value("default")
        browser.follow(page.find_element(By.NAME, "_ask"))
        assert "eight hours" in page.find_element(By.CSS_SELECTOR, "#answer .answer-text").text
        first = page.find_element(By.CSS_SELECTOR, "#sources li.source")
        assert first.get_attribute("value") == "1"

    with browser.step("follow a source") as page:
        browser.follow(first.find_element(By.LINK_TEXT, "studio-handbook.md"))
        assert page.current_url.split("?")[0] == document_url.split("?")[0]
        anchor = page.current_url.rsplit("#", 1)[1]
        assert "eight hours" in page.find_element(By.ID, anchor).text

    with browser.step("bulk delete") as page:
        browser.open("/admin/registry/document/")
        page.find_element(By.ID, "action-toggle").click()  # select every row
        Select(page.find_element(By.NAME, "action")).select_by_value("delete_selected")
        browser.follow(page.find_element(By.NAME, "index"))  # "Go"
        browser.follow(page.find_element(By.CSS_SELECTOR, "input[type=submit]"))  # "Yes, I'm sure"
        assert (
            "Successfully deleted 2 documents"
            in page.find_element(By.CSS_SELECTOR, ".messagelist .success").text
        )
        page.implicitly_wait(0)  # (an empty lookup would wait the whole implicit wait)
        assert not page.find_elements(By.CSS_SELECTOR, "#result_list tbody tr")

    status, listing = live_service.call("GET", "/documents")
    assert (status, listing["total"]) == (200, 0)
    checked = run_manage("check_registry", env=env)
    assert checked.returncode == 0, checked.stderr
    assert "0 documents in the database registry, 0 chunks" in checked.stdout

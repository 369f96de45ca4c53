"""A real browser with JavaScript off signs a phone petition (security.md T-C3).

Headless Chromium (the Debian packages ``chromium`` and ``chromium-driver``) with scripts
disabled twice over -- ``--blink-settings=scriptEnabled=false`` and the JavaScript
content setting -- against a real ``anonsign serve``, at a phone width (360x740) and a
desktop width (1024x800). It finds the form at once, switches to Russian and then to
Turkmen with the language links, signs with a real form post, signs again with another
spelling of the same number, and sees the same thank-you page; a mistyped number shows
its error where the reader is looking. The server keeps its real two-second minimum
before a form is accepted (web.form_guard), so the browser posts each form at least that
long after its page loaded, as a person does; the honeypot field is nowhere on screen.
A second test, in Turkmen and in Russian at phone size, clears the cookies between
loading the form and sending it (Tor Browser's New Identity): the browser sends the form
without a bubble of its own, the expired page is in the form's language with a button
back to the form, the server's own messages answer an empty form, and the count's one
line leads to a readable auditor's page. Screenshots go to ``test-artifacts/browser/``
(gitignored) for a person to look at. Tor Browser itself ("Safest", every locale) is a
release check.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from babel.support import Translations

from anonsign.config import DEFAULT_FORM_MIN_SECONDS, Settings
from anonsign.domain.petitions import Petition
from anonsign.service import Service
from anonsign.web import i18n
from tests.live import free_port, running

#: Chromium is heavy: never beside the timing measurement (pyproject's --dist loadgroup).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("cpu-quiet")]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
MISSING = "install chromium and chromium-driver: apt-get install chromium chromium-driver"

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"

#: name -> (width, height, device pixel ratio, mobile)
SIZES = {"phone": (360, 740, 2, True), "desktop": (1024, 800, 1, False)}

PHONE = "+993 65 123456"
SAME_PHONE = "0099365123456"  # the same number, written with the 00 prefix
MISTYPED = "+993 65 12"

SCREENSHOTS = [
    "petition-en", "petition-ru", "petition-tk", "form-tk", "error-invalid-number-tk",
    "thanks-tk", "thanks-again-tk",
]  # fmt: skip

CHROMIUM_ARGUMENTS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--blink-settings=scriptEnabled=false",
]

# A page outside the service (no CSP applies to it) that changes its own title if, and
# only if, the browser runs scripts.
JS_PROBE = (
    "data:text/html,<title>scripts-off</title>"
    "<script>document.title='scripts-on'</script>"
    "<noscript><p id=noscript>no scripts</p></noscript>"
)


def tr(locale: str, msgid: str) -> str:
    text = Translations.load(str(i18n.TRANSLATIONS_DIR), [locale]).gettext(msgid)
    assert text != msgid or locale == "en", (locale, msgid)
    return str(text)


@pytest.fixture
def browser(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> Iterator[Any]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        print(f"browser tests skipped: {MISSING}")
        pytest.skip(MISSING)
    # Selenium logs each command's body at DEBUG, typed identifiers included; the suite's
    # log scan (tests/conftest.py) would rightly count them as signer data in the logs.
    caplog.set_level(logging.INFO, logger="selenium")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service as DriverService

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in [*CHROMIUM_ARGUMENTS, f"--user-data-dir={tmp_path / 'profile'}"]:
        options.add_argument(argument)
    options.add_experimental_option(
        "prefs", {"profile.managed_default_content_settings.javascript": 2}
    )
    driver = webdriver.Chrome(
        service=DriverService(str(CHROMEDRIVER), log_output=str(tmp_path / "driver.log")),
        options=options,
    )
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def server(
    tmp_path: Path, settings: Settings, service: Service, phone_petition: Petition
) -> Iterator[str]:
    port = free_port()
    env = {
        "ANONSIGN_INSTANCE": str(settings.instance_path),
        "ANONSIGN_DATABASE_URL": settings.database_url,
        "ANONSIGN_WORKERS": "1",
        # The real minimum, not the suite's 0 (tests/live.py): Page waits it out.
        "ANONSIGN_FORM_MIN_SECONDS": str(DEFAULT_FORM_MIN_SECONDS),
    }
    with running(["serve", "--port", str(port)], env, port, tmp_path / "server.log"):
        yield f"http://127.0.0.1:{port}"


class Page:
    """What the reader sees, read through the driver and DevTools (never page scripts)."""

    def __init__(self, driver: Any, size: str) -> None:
        from selenium.webdriver.common.by import By

        self.driver, self.size, self.by = driver, size, By
        #: When the current page had loaded: its form was issued before that.
        self.loaded_at = time.monotonic()
        width, height, ratio, mobile = SIZES[size]
        self.height = height
        driver.set_window_size(width, height)
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": ratio, "mobile": mobile},
        )

    def follow(self, element: Any) -> None:
        """Click a link or a submit button and wait for the new page to replace this one."""
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.support.ui import WebDriverWait

        old = self.find("html")
        element.click()

        def replaced(_driver: Any) -> bool:
            try:
                old.get_attribute("lang")
            except WebDriverException:  # stale, or detached mid-navigation
                return True
            return False

        WebDriverWait(self.driver, 30).until(replaced)
        WebDriverWait(self.driver, 30).until(lambda _driver: self.lang_or_none() is not None)
        self.loaded_at = time.monotonic()

    def open(self, url: str) -> None:
        self.driver.get(url)
        self.loaded_at = time.monotonic()

    def lang_or_none(self) -> str | None:
        from selenium.common.exceptions import WebDriverException

        try:
            lang = self.find("html").get_attribute("lang")
        except WebDriverException:
            return None
        return str(lang) if lang else None

    def find(self, css: str) -> Any:
        return self.driver.find_element(self.by.CSS_SELECTOR, css)

    def all(self, css: str) -> list[Any]:
        return list(self.driver.find_elements(self.by.CSS_SELECTOR, css))

    def lang(self) -> str:
        return str(self.find("html").get_attribute("lang"))

    def metrics(self) -> dict[str, Any]:
        result: dict[str, Any] = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
        return result

    def in_first_screen(self, element: Any) -> bool:
        """Wholly inside the part of the page on screen now, without scrolling."""
        top = self.metrics()["cssVisualViewport"]["pageY"]
        rect = element.rect
        return bool(top <= rect["y"] and rect["y"] + rect["height"] <= top + self.height)

    def assert_fits(self) -> None:
        """No sideways scrolling, readable text, and not one script on the page."""
        metrics = self.metrics()
        content = metrics["cssContentSize"]["width"]
        assert content <= metrics["cssLayoutViewport"]["clientWidth"] + 1, content
        size = float(self.find("body").value_of_css_property("font-size").removesuffix("px"))
        assert size >= 16
        assert "<script" not in self.driver.page_source.lower()
        assert not self.all("script, svg, img, iframe, object, embed, video, audio")

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{self.size}-{name}.png"
        assert self.driver.save_screenshot(str(path)), path

    def full_shot(self, name: str) -> None:
        """The whole page, for review (what the reader sees after scrolling)."""
        import base64

        size = self.metrics()["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        data = self.driver.execute_cdp_cmd(
            "Page.captureScreenshot",
            {"format": "png", "captureBeyondViewport": True, "clip": clip},
        )["data"]
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / f"{self.size}-{name}-full.png").write_bytes(base64.b64decode(data))

    def fill_and_sign(self, identifier: str) -> None:
        field = self.find("#identifier")
        field.clear()
        field.send_keys(identifier)
        consent = self.find("#consent")
        if not consent.is_selected():
            self.find("label[for=consent]").click()  # the label is the big target
        assert consent.is_selected()
        # A person takes longer than the server's minimum to fill the form in; a browser
        # driven by a test may not, so it waits (with a margin) before it posts.
        time.sleep(max(0.0, self.loaded_at + DEFAULT_FORM_MIN_SECONDS + 0.3 - time.monotonic()))
        self.follow(self.find("form button[type=submit]"))


@pytest.mark.parametrize("size", sorted(SIZES))
def test_sign_a_phone_petition_without_javascript(
    browser: Any, server: str, phone_petition: Petition, service: Service, size: str
) -> None:
    page = Page(browser, size)

    # The browser really runs no scripts: a page that would retitle itself does not.
    browser.get(JS_PROBE)
    assert browser.title == "scripts-off"
    assert page.find("#noscript").is_displayed()

    # The petition, in English by default; the way to the form is on the first screen.
    page.open(f"{server}/p/{phone_petition.slug}")
    assert page.lang() == "en"
    page.assert_fits()
    jump = page.find("a.button[href='#sign']")
    assert jump.is_displayed()
    assert page.in_first_screen(jump), jump.rect
    assert jump.text == "Sign this petition"
    languages = page.all("nav.languages a")
    assert [a.text for a in languages] == ["English", "Русский", "Türkmençe"]
    assert all(page.in_first_screen(a) for a in languages)
    page.shot("petition-en")
    page.full_shot("petition-en")

    # Russian, then Turkmen, with the plain language links.
    page.follow(page.find("nav.languages a[hreflang=ru]"))
    assert page.lang() == "ru"
    assert page.find("a.button[href='#sign']").text == tr("ru", "Sign this petition")
    page.assert_fits()
    page.shot("petition-ru")
    page.follow(page.find("nav.languages a[hreflang=tk]"))
    assert page.lang() == "tk"
    jump = page.find("a.button[href='#sign']")
    assert jump.text == tr("tk", "Sign this petition")
    assert page.in_first_screen(jump)
    page.assert_fits()
    page.shot("petition-tk")
    page.full_shot("petition-tk")

    # The jump link brings the form on screen.
    jump.click()
    assert browser.current_url.endswith("#sign")
    assert page.in_first_screen(page.find("#sign h2"))
    assert page.find("label[for=identifier]").text == tr(
        "tk", "Your phone number, with country code"
    )
    page.shot("form-tk")

    # The honeypot is in the form but nowhere on screen (moved off it by the stylesheet),
    # so a person never fills it; the screenshot above shows the form without it.
    honeypot = page.find("#website")
    assert not honeypot.is_displayed()
    assert not page.find("label[for=website]").is_displayed()
    assert honeypot.rect["x"] + honeypot.rect["width"] <= 0, honeypot.rect
    assert honeypot.get_attribute("tabindex") == "-1"
    assert honeypot.get_attribute("value") == ""

    # A mistyped number: the page comes back at the form, with the message in view.
    page.fill_and_sign(MISTYPED)
    assert page.lang() == "tk"
    error = page.find("#form-error")
    assert error.is_displayed()
    assert page.in_first_screen(error), (error.rect, page.metrics()["cssVisualViewport"])
    assert page.find("#identifier").get_attribute("value") == MISTYPED
    page.assert_fits()
    page.shot("error-invalid-number-tk")

    # A real form post, no script: the thank-you page, in Turkmen.
    page.fill_and_sign(PHONE)
    assert page.lang() == "tk"
    assert page.find("h1").text == tr("tk", "Thank you")
    page.assert_fits()
    first = page.find("main").text
    page.shot("thanks-tk")

    # Again with another spelling of the same number: the very same page.
    page.follow(page.find("main a[href='/p/tm-phones']"))
    assert page.lang() == "tk"
    page.fill_and_sign(SAME_PHONE)
    assert page.find("h1").text == tr("tk", "Thank you")
    assert page.find("main").text == first
    page.shot("thanks-again-tk")

    # Counted once (the count itself moves only when a batch is published).
    assert next(s.signatures for s in service.summaries()) == 1
    shots = {p.name for p in ARTIFACTS.glob(f"{size}-*.png")}
    assert {f"{size}-{name}.png" for name in SCREENSHOTS} <= shots


#: The server's own messages a browser's validation used to pre-empt (web/public.py).
CONSENT_MISSING = "Please tick the box to confirm that you want to sign."
PHONE_MISSING = "Please enter your phone number."


@pytest.mark.parametrize("locale", ["tk", "ru"])
def test_the_form_keeps_its_language_when_the_cookie_is_lost(
    browser: Any, server: str, phone_petition: Petition, service: Service, locale: str
) -> None:
    """Issue 9, items 3, 4 and 6, on a phone, with Tor Browser's New Identity in between.

    The form is near the top; the count is one line that leads to the auditor's page.
    The cookie is cleared after the page loads and a form with its box left unticked is
    sent: the browser does not stop it with its own English bubble (novalidate), and the
    expired-form page is in the form's language with a button back to the form. Then,
    with a cookie again, the empty form gets the server's translated messages, and the
    number signs.
    """
    page = Page(browser, "phone")
    slug = phone_petition.slug
    page.open(f"{server}/p/{slug}?lang={locale}")
    assert page.lang() == locale
    page.assert_fits()
    # The form follows the text and a two-line count: its heading is on the first screen
    # of a short petition, not screens down behind an audit paragraph.
    assert page.in_first_screen(page.find("#sign h2")), page.find("#sign h2").rect
    assert not page.all("#count code, #count pre")
    page.shot(f"petition-top-{locale}")
    page.full_shot(f"petition-whole-{locale}")

    # The auditor's page, one link away: readable on a phone, commands wrapped.
    page.follow(page.find(f"#count a[href='/p/{slug}/audit']"))
    assert page.lang() == locale
    assert page.find("h1").text == tr(locale, "Check the count")
    page.assert_fits()
    commands = page.all("pre.command")
    assert len(commands) == 2
    assert commands[0].text.startswith("anonsign audit verify http://127.0.0.1:")
    assert page.find("pre#key").is_displayed()
    page.full_shot(f"audit-{locale}")
    page.open(f"{server}/p/{slug}?lang={locale}")

    # New Identity between loading and sending: no cookie, the box forgotten.
    browser.delete_all_cookies()
    assert browser.get_cookies() == []
    page.find("#identifier").send_keys(PHONE)
    assert not page.find("#consent").is_selected()
    time.sleep(max(0.0, page.loaded_at + DEFAULT_FORM_MIN_SECONDS + 0.3 - time.monotonic()))
    page.follow(page.find("form button[type=submit]"))  # no bubble: the page is replaced
    assert page.lang() == locale
    assert page.find("h1").text == tr(locale, "This page is out of date.")
    back = page.find("main a.button")
    assert back.text == tr(locale, "Back to the petition")
    assert back.get_attribute("href").endswith(f"/p/{slug}?lang={locale}#sign")
    assert page.in_first_screen(back)
    page.assert_fits()
    page.shot(f"expired-{locale}")

    # Back at the form, in the same language, with a new cookie.
    page.follow(back)
    assert page.lang() == locale
    assert browser.current_url.endswith("#sign")
    assert page.in_first_screen(page.find("#sign h2"))
    assert page.find("label[for=identifier]").text == tr(
        locale, "Your phone number, with country code"
    )

    # The empty form reaches the server, which answers in the reader's language.
    time.sleep(max(0.0, page.loaded_at + DEFAULT_FORM_MIN_SECONDS + 0.3 - time.monotonic()))
    page.follow(page.find("form button[type=submit]"))
    error = page.find("#form-error")
    assert error.text == tr(locale, CONSENT_MISSING)
    assert page.in_first_screen(error)
    page.shot(f"error-empty-{locale}")
    page.find("label[for=consent]").click()
    time.sleep(max(0.0, page.loaded_at + DEFAULT_FORM_MIN_SECONDS + 0.3 - time.monotonic()))
    page.follow(page.find("form button[type=submit]"))
    assert page.find("#form-error").text == tr(locale, PHONE_MISSING)
    assert page.lang() == locale
    page.shot(f"error-no-number-{locale}")

    page.fill_and_sign(PHONE)
    assert page.lang() == locale
    assert page.find("h1").text == tr(locale, "Thank you")
    page.shot(f"thanks-{locale}")
    assert next(s.signatures for s in service.summaries()) == 1
    shots = {p.name for p in ARTIFACTS.glob("phone-*.png")}
    for name in ("petition-top", "expired", "error-empty", "error-no-number", "thanks"):
        assert f"phone-{name}-{locale}.png" in shots, name

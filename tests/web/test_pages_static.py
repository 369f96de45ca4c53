"""Nothing in a page needs JavaScript or loads anything from elsewhere (security.md T-C2).

Signers use Tor Browser at "Safest": no JavaScript, no SVG, no web fonts, no media. Every
template and stylesheet is scanned as source, and every page as it is rendered (each
language, each error, a closed petition, a hostile petition text): no script
or event handler, no SVG, image, frame or media element, no preloading, no refresh,
and every address relative. A petition text's own links to other sites are the one
exception, as plain ``<a href>`` with ``rel="noopener noreferrer nofollow"``. Pages stay
small for slow circuits: under 64 KiB, the stylesheet under 16 KiB.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

import anonsign.web
from anonsign.app import create_app
from anonsign.config import Settings
from anonsign.crypto.keyfile import OrganizerSecretKey
from anonsign.domain.identifiers import IdentifierKind
from anonsign.domain.petitions import Petition, Recipient
from anonsign.service import Service
from anonsign.web.markup import render_petition_text
from tests.conftest import csrf_token, page_fields, sign

WEB = Path(anonsign.web.__file__).parent
TEMPLATES = sorted((WEB / "templates").rglob("*.html"))
STYLESHEETS = sorted((WEB / "static").rglob("*.css"))

PAGE_LIMIT = 64 * 1024
CSS_LIMIT = 16 * 1024
STYLESHEET = "/static/style.css"
EXTERNAL_REL = "noopener noreferrer nofollow"

#: Elements that run code, need SVG/MathML, load media or frames, or re-base links.
FORBIDDEN_ELEMENTS = {
    "script", "noscript", "svg", "math", "img", "picture", "source", "iframe", "frame",
    "frameset", "object", "embed", "applet", "video", "audio", "track", "canvas", "base",
    "style", "template", "portal",
}  # fmt: skip
URL_ATTRIBUTES = {
    "src", "href", "action", "srcset", "formaction", "poster", "data", "cite",
    "background", "ping", "manifest", "longdesc", "xlink:href",
}  # fmt: skip
PRELOADS = "preload|prefetch|dns-prefetch|preconnect|prerender|modulepreload"
#: Raw markup that must not appear in a page, even malformed enough to fool a parser.
FORBIDDEN_MARKUP = [
    re.compile(rf"<{name}\b", re.IGNORECASE) for name in sorted(FORBIDDEN_ELEMENTS)
] + [re.compile(r"<[^>]*\son[a-z]+\s*=", re.IGNORECASE)]  # event handler attributes
#: ... and in a template's source, which no petition text can trigger.
FORBIDDEN_SOURCE = [
    *FORBIDDEN_MARKUP,
    re.compile(r"javascript:", re.IGNORECASE),
    re.compile(r"http-equiv\s*=\s*[\"']?refresh", re.IGNORECASE),
    re.compile(rf"\brel\s*=\s*[\"']?[^\"'>]*\b({PRELOADS})\b", re.IGNORECASE),
    re.compile(r"\sstyle\s*=", re.IGNORECASE),  # inline styles: CSP style-src 'self' drops them
    re.compile(r"\|\s*safe\b|autoescape\s+false"),  # output escaping stays on
]
FORBIDDEN_CSS = [
    re.compile(p, re.IGNORECASE)
    for p in [r"@font-face", r"@import", r"url\s*\(", r"expression\s*\(", r"-moz-binding",
              r"behavior\s*:", r"image-set\s*\(", r"@namespace"]
]  # fmt: skip

HOSTILE_TEXT = """# We ask

![x](http://evil.example/x.png)

<img src="http://evil.example/y.png"> <script>alert(1)</script>
<svg onload="alert(2)"></svg> <iframe src="http://evil.example/"></iframe>

Read [the report](https://reports.example.org/tm?id=1) and [ours](/p/free-press).
[js](javascript:alert(3)) [data](data:text/html,hi) <a href="http://evil.example" onclick="x">a</a>

![ref][pic]

[pic]: http://evil.example/ref.png
"""


# --- the sources ------------------------------------------------------------------------------


def test_there_are_templates_and_one_stylesheet() -> None:
    assert len(TEMPLATES) >= 6
    assert [p.name for p in STYLESHEETS] == ["style.css"]


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.relative_to(WEB).as_posix())
def test_template_source_is_safe(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    found = [pattern.pattern for pattern in FORBIDDEN_SOURCE if pattern.search(source)]
    assert not found, found
    for name, value in re.findall(r"\b(src|href|action|srcset)\s*=\s*\"([^\"]*)\"", source):
        # An expression is checked on the rendered pages; a literal must be relative.
        assert "_external" not in value, (name, value)
        if not value.startswith("{{"):
            assert value.startswith(("#", "/")), (name, value)
            assert not value.startswith("//"), (name, value)
    assert source.count("<link") == (1 if path.name == "base.html" else 0)


@pytest.mark.parametrize("path", STYLESHEETS, ids=lambda p: p.name)
def test_stylesheet_loads_nothing_and_is_small(path: Path) -> None:
    css = path.read_text(encoding="utf-8")
    found = [pattern.pattern for pattern in FORBIDDEN_CSS if pattern.search(css)]
    assert not found, found
    assert len(css.encode()) < CSS_LIMIT


# --- the petition text ------------------------------------------------------------------------


def test_a_petition_text_renders_no_image_script_or_raw_html() -> None:
    html = str(render_petition_text(HOSTILE_TEXT))
    parsed = parse(html)
    assert {tag for tag, _ in parsed.elements} <= {"h2", "p", "a"}
    assert not any(name.startswith("on") for _, attrs in parsed.elements for name in attrs)
    assert {urlsplit(url).scheme for url in parsed.urls()} <= {"http", "https", ""}
    links = [attrs for tag, attrs in parsed.elements if tag == "a"]
    assert {a["href"] for a in links} == {
        "http://evil.example/x.png",  # the image's address, as a link the reader may follow
        "https://reports.example.org/tm?id=1",
        "/p/free-press",
        "http://evil.example/ref.png",
    }
    assert all(a["rel"] == EXTERNAL_REL for a in links)
    assert "&lt;script&gt;" in html  # shown as text, never run


# --- the rendered pages -----------------------------------------------------------------------


class Parsed(HTMLParser):
    """Every start tag with its attributes, as a browser would read them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {name: value or "" for name, value in attrs}))

    def urls(self) -> list[str]:
        return [v for _, attrs in self.elements for k, v in attrs.items() if k in URL_ATTRIBUTES]


def parse(html: str) -> Parsed:
    parser = Parsed()
    parser.feed(html)
    parser.close()
    return parser


def is_relative(url: str) -> bool:
    parts = urlsplit(url.strip())
    return not parts.scheme and not parts.netloc and not url.strip().startswith("//")


def assert_safe_page(html: str) -> None:
    parsed = parse(html)
    tags = [tag for tag, _ in parsed.elements]
    assert not set(tags) & FORBIDDEN_ELEMENTS, set(tags) & FORBIDDEN_ELEMENTS
    for pattern in FORBIDDEN_MARKUP:
        assert not pattern.search(html), pattern.pattern
    for tag, attrs in parsed.elements:
        handlers = [name for name in attrs if name.startswith("on")]
        assert not handlers, (tag, handlers)
        assert "style" not in attrs, tag
        for name, value in attrs.items():
            if name not in URL_ATTRIBUTES:
                continue
            assert "javascript:" not in re.sub(r"[\s\x00-\x1f]", "", value).lower()
            if is_relative(value):
                continue
            # Only a petition text's own link to another site, as a plain link.
            assert tag == "a", (tag, name, value)
            assert name == "href", (tag, name, value)
            assert urlsplit(value).scheme in {"http", "https", ""}, value
            assert attrs.get("rel") == EXTERNAL_REL, (value, attrs)
    links = [attrs for tag, attrs in parsed.elements if tag == "link"]
    assert links == [{"rel": "stylesheet", "href": STYLESHEET}]
    metas = [attrs for tag, attrs in parsed.elements if tag == "meta"]
    assert not [m for m in metas if "http-equiv" in m], metas
    for tag, attrs in parsed.elements:
        if tag == "form":
            assert attrs.get("method") == "post"
            assert is_relative(attrs["action"])
    assert len(html.encode()) < PAGE_LIMIT, len(html.encode())


@dataclass
class Site:
    client: FlaskClient
    service: Service
    app: Flask
    settings: Settings


@pytest.fixture
def site(
    app: Flask,
    client: FlaskClient,
    service: Service,
    settings: Settings,
    petition: Petition,
    phone_petition: Petition,
    organizer: OrganizerSecretKey,
) -> Site:
    recipients = [Recipient("alice", organizer.public_key())]
    for slug in ["hostile", "closed-one"]:
        service.create_petition(
            slug=slug,
            title=f"Petition {slug} <b>bold</b>",
            text=HOSTILE_TEXT,
            identifier_kind=IdentifierKind.EMAIL,
            recipients=recipients,
        )
    service.close("closed-one")
    return Site(client, service, app, settings)


def _get(path: str) -> Callable[[Site], TestResponse]:
    return lambda s: s.client.get(path)


def _signed(slug: str, identifier: str, lang: str = "en") -> Callable[[Site], TestResponse]:
    def run(s: Site) -> TestResponse:
        s.client.get(f"/?lang={lang}")
        return sign(s.client, slug, identifier)

    return run


def _replayed(slug: str, identifier: str, lang: str) -> Callable[[Site], TestResponse]:
    """The same form posted twice: the second gets the petition page with the refusal."""

    def run(s: Site) -> TestResponse:
        s.client.get(f"/?lang={lang}")
        form = page_fields(s.client, slug) | {"identifier": identifier, "consent": "y"}
        assert s.client.post(f"/p/{slug}/sign", data=form).status_code == 200
        return s.client.post(f"/p/{slug}/sign", data=form)

    return run


def _csrf_failure(s: Site) -> TestResponse:
    return s.client.post("/p/free-press/sign", data={"identifier": "a@example.org"})


def _closed_post(s: Site) -> TestResponse:
    token = csrf_token(s.client.get("/p/free-press").get_data(True))
    form = {"csrf_token": token, "identifier": "a@example.org", "consent": "y"}
    return s.client.post("/p/closed-one/sign", data=form)


def _oversized(s: Site) -> TestResponse:
    return s.client.post("/p/free-press/sign", data={"contact": "x" * 100_000})


def _server_error(s: Site) -> TestResponse:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("broken")

    s.service.petitions = broken  # type: ignore[method-assign]
    return s.client.get("/")


def _untrusted_host(s: Site) -> TestResponse:
    other = create_app(s.settings.with_overrides(trusted_hosts=("abc.onion",)), service=s.service)
    return other.test_client().get("/p/free-press", headers={"Host": "evil.example"})


#: name -> (request, status). Each is a page a signer can reach.
PAGES: dict[str, tuple[Callable[[Site], TestResponse], int]] = {
    "index": (_get("/"), 200),
    "index-ru": (_get("/?lang=ru"), 200),
    "petition-en": (_get("/p/free-press?lang=en"), 200),
    "petition-ru": (_get("/p/free-press?lang=ru"), 200),
    "petition-tk": (_get("/p/free-press?lang=tk"), 200),
    "phone-petition-tk": (_get("/p/tm-phones?lang=tk"), 200),
    "hostile-petition": (_get("/p/hostile"), 200),
    "hostile-petition-ru": (_get("/p/hostile?lang=ru"), 200),
    "closed-petition": (_get("/p/closed-one"), 200),
    "audit-en": (_get("/p/free-press/audit"), 200),
    "audit-ru": (_get("/p/free-press/audit?lang=ru"), 200),
    "audit-tk": (_get("/p/tm-phones/audit?lang=tk"), 200),
    "audit-hostile": (_get("/p/hostile/audit"), 200),
    "invalid-number-tk": (_signed("tm-phones", "+993 65 12", "tk"), 400),
    "thanks-en": (_signed("free-press", "a@example.org"), 200),
    "thanks-ru": (_signed("free-press", "a@example.org", "ru"), 200),
    "thanks-tk": (_signed("tm-phones", "+993 65 123456", "tk"), 200),
    "thanks-hostile-tk": (_signed("hostile", "a@example.org", "tk"), 200),
    "form-refused-tk": (_replayed("tm-phones", "+993 65 123456", "tk"), 400),
    "error-400-form": (_csrf_failure, 400),
    "error-400-host": (_untrusted_host, 400),
    "error-404": (_get("/no-such-page?lang=ru"), 404),
    "error-404-petition": (_get("/p/no-such-petition"), 404),
    "error-405": (_get("/p/free-press/sign"), 405),
    "error-410": (_closed_post, 410),
    "error-413": (_oversized, 413),
    "error-500": (_server_error, 500),
}


@pytest.mark.parametrize("name", sorted(PAGES))
def test_rendered_page_is_safe_and_small(site: Site, name: str) -> None:
    request, status = PAGES[name]
    answer = request(site)
    assert answer.status_code == status
    assert answer.mimetype == "text/html"
    assert_safe_page(answer.get_data(as_text=True))


def test_the_hostile_text_is_shown_as_text(site: Site) -> None:
    html = site.client.get("/p/hostile").get_data(as_text=True)
    assert (
        '<a href="https://reports.example.org/tm?id=1" rel="noopener noreferrer nofollow">' in html
    )
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "Petition hostile &lt;b&gt;bold&lt;/b&gt;" in html


def test_the_checks_catch_what_they_look_for() -> None:
    """Each page check can fail: a planted problem is found."""
    good = (
        '<html><head><link rel="stylesheet" href="/static/style.css"></head><body>'
        '<form method="post" action="/p/x/sign"></form>{}</body></html>'
    )
    assert_safe_page(good.format(""))
    for planted in [
        "<script>1</script>",
        '<p onclick="x">',
        '<a href="javascript:x">',
        '<a href="java\nscript:x">',
        "<svg></svg>",
        '<img src="/x.png">',
        '<iframe src="/x"></iframe>',
        '<video src="/x"></video>',
        '<a href="http://other.example/">',
        '<a href="//other.example/">',
        '<a href="https://other.example/" rel="noopener">',
        '<a href="data:text/html,x" rel="noopener noreferrer nofollow">',
        '<link rel="stylesheet" href="/static/style.css">',
        '<form method="post" action="http://other.example/"></form>',
        '<link rel="preload" href="/static/style.css">',
        '<meta http-equiv="refresh" content="0;url=/">',
        '<p style="color:red">',
        "x" * PAGE_LIMIT,
    ]:
        with pytest.raises(AssertionError):
            assert_safe_page(good.format(planted))

"""No 5xx from any input to the officers' and the public pages (issue 14 item 5): a
property-based fuzz (hypothesis) of every form field, query parameter and path segment,
sent as a signed-in admin with a valid CSRF token so that every form reaches its handler.
The API is fuzzed from its OpenAPI document by schemathesis (tests/web/test_openapi.py).

The fields are not listed by hand: the forms are read from the pages themselves (every
``<form>`` of every page, its fields and their default values), and each field is fuzzed
with the others left at their defaults. A second check reads the handlers' source for every
field and parameter they read, so a field no page shows is still fuzzed.

Size: the four attacks of issue 14 (a Unicode digit, a huge number, NUL, TOML 500 deep) in
every field, then ``ALERTS_FUZZ_EXAMPLES`` generated examples per field (default 2), and
``ALERTS_FUZZ_SEED`` a seed (default: derandomised, the same examples every run). The long
run, e.g. ``ALERTS_FUZZ_EXAMPLES=200 pytest tests/security/test_fuzz_pages.py -s``, prints
its size and the count of server errors (which must be 0) on SQLite and, with
``ALERTS_TEST_DATABASE_URL``, PostgreSQL.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
from collections.abc import Coroutine
from contextlib import AsyncExitStack
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import pytest
from aiohttp.test_utils import TestServer
from hypothesis import HealthCheck, example, given, seed, settings
from hypothesis import strategies as st
from sqlalchemy import select

from alerts.accounts import users
from alerts.app import App, open_app
from alerts.compose import approval, drafts
from alerts.contacts.subscriptions import Signer
from alerts.core.clock import utcnow
from alerts.core.config import Settings
from alerts.core.signing import Signing
from alerts.core.states import AlertStatus
from alerts.delivery.publish import publish
from alerts.followups import add as followup_add
from alerts.store.models import Contact, User
from alerts.web import auth, make_web_app
from alerts.web.public import pages as public_pages
from tests.factories import RENDERER, add_contacts, approved_alert
from tests.web import PASSWORD, Client, make_staff

EXAMPLES = int(os.environ.get("ALERTS_FUZZ_EXAMPLES", "2"))
SEED = os.environ.get("ALERTS_FUZZ_SEED")
SECRET = "fuzz-secret-key-0123456789"
FUZZER = "fuzzer"
ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")

DEEP_TOML = "a = " + "[" * 500 + "]" * 500
#: Inputs that made server errors before, or that break naive parsers.
SPECIAL = [
    "",
    " ",
    "²",
    "١٢",
    "-1",
    "0",
    "1e9",
    "NaN",
    "99999999999999999999999",
    "9" * 16,
    "\x00",
    "a\x00b",
    "\u202eexe.pdf",
    "\r\n",
    "x" * 100_000,
    DEEP_TOML,
    "a" + ".b" * 500 + " = 1",
    '"""',
    "[[x]]\n[[x]]\n[x]",
    "../../../etc/passwd",
    "<script>alert(1)</script>",
    "' OR 1=1 --",
    "%00",
    "%",
    "2030-13-45T25:61",
    "9999-12-31T23:59",
    "0001-01-01T00:00",
    "javascript:alert(1)",
    "//evil.example/x",
    "\\\\evil.example",
    "@channel",
    "a@b",
    "person0@example.org",
    "-100123456789",
    "🙂" * 50,
    "فاطمة",
]
VALUES = st.one_of(
    st.sampled_from(SPECIAL),
    st.text(max_size=40),
    st.text(alphabet=st.characters(max_codepoint=0x9F), max_size=20),  # ASCII and C0/C1 controls
    st.integers(min_value=-(10**25), max_value=10**25).map(str),
    st.from_regex(r"\A[0-9٠-٩²³¹۳]{1,24}\Z"),
)
FILES = st.tuples(
    st.one_of(st.sampled_from(["c.csv", "\x00.csv", "../x", ""]), st.text(max_size=20)),
    st.binary(max_size=300),
)


# ---------------------------------------------------------------- a server in its own loop


class Background:
    """An event loop in a thread: the server runs there while hypothesis drives it from here."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 120) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


# ---------------------------------------------------------------- the pages' forms


@dataclass
class Form:
    method: str
    action: str
    fields: list[tuple[str, str]]  # (name, default value), in page order
    files: list[str]


class Forms(HTMLParser):
    """Every ``<form>`` of a page with its named inputs, selects, textareas and buttons."""

    def __init__(self, page_path: str) -> None:
        super().__init__(convert_charrefs=True)
        self.page_path = page_path
        self.forms: list[Form] = []
        self.current: Form | None = None
        self.select: str | None = None
        self.select_value: str | None = None
        self.textarea: str | None = None
        self.text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            action = a.get("action") or self.page_path
            self.current = Form(a.get("method", "get").upper(), action, [], [])
            return
        if self.current is None or not a.get("name"):
            if tag == "option" and self.select is not None and self.select_value is None:
                self.select_value = a.get("value", "")
            return
        name = a["name"]
        if tag == "input":
            kind = a.get("type", "text")
            if kind == "file":
                self.current.files.append(name)
            elif kind in ("checkbox", "radio"):
                if "checked" in a or not any(n == name for n, _ in self.current.fields):
                    self.current.fields = [
                        (n, v) for n, v in self.current.fields if n != name or kind == "checkbox"
                    ]
                    self.current.fields.append((name, a.get("value", "on")))
            else:
                self.current.fields.append((name, a.get("value", "")))
        elif tag == "button":
            if not any(n == name for n, _ in self.current.fields):
                self.current.fields.append((name, a.get("value", "")))
        elif tag == "select":
            self.select, self.select_value = name, None
        elif tag == "textarea":
            self.textarea, self.text = name, ""

    def handle_data(self, data: str) -> None:
        if self.textarea is not None:
            self.text += data

    def handle_endtag(self, tag: str) -> None:
        if self.current is None:
            return
        if tag == "select" and self.select is not None:
            self.current.fields.append((self.select, self.select_value or ""))
            self.select = None
        elif tag == "textarea" and self.textarea is not None:
            self.current.fields.append((self.textarea, self.text))
            self.textarea = None
        elif tag == "form":
            self.forms.append(self.current)
            self.current = None


def pattern(path: str) -> str:
    """A path with its ids and tokens as placeholders (one form per route is enough)."""
    path = re.sub(r"/[0-9]+(?=/|$)", "/{id}", urlsplit(path).path)
    path = re.sub(r"/users/[^/]+/", "/users/{name}/", path)
    return re.sub(r"/(unsubscribe|preferences|confirm)/[^/]+", r"/\1/{token}", path)


# ---------------------------------------------------------------- what the handlers read

_READS = [
    re.compile(r'\.fields?\("(\w+)"'),
    re.compile(r'form\.get\("(\w+)"'),
    re.compile(r'form_value\(form, "(\w+)"'),
    re.compile(r'(?:query|\bq)\.get\("(\w+)"'),
]
_TUPLES = re.compile(r"for k in \(([^)]*)\)")


def names_read_by_handlers() -> set[str]:
    """Every form field and query parameter name the pages' handlers read, from their source."""
    from alerts.contacts.fields import TEXT_FIELDS

    names: set[str] = set(TEXT_FIELDS)
    for folder in ("alerts/web/ui", "alerts/web/public"):
        for path in (ROOT / folder).glob("*.py"):
            source = path.read_text(encoding="utf-8")
            for regex in _READS:
                names |= set(regex.findall(source))
            for group in _TUPLES.findall(source):
                names |= set(re.findall(r'"(\w+)"', group))
    return names - {"csrf_token"}


#: Query parameters the pages read besides their forms' (``names_read_by_handlers`` checks
#: that this table and the forms cover every one).
QUERY = {
    "/": ["status"],
    "/login": ["next"],
    "/office/alerts/new": ["family"],
    "/office/alerts/{id}": ["notice", "n"],
    "/office/alerts/{id}/preview": ["audience", "channel", "language"],
    "/office/alerts/{id}/deliveries": ["state", "channel", "page"],
    "/office/contacts": ["q", "kind", "list", "page", "notice"],
    "/office/followups": ["all", "notice"],
    "/office/audit": ["type", "id"],
    "/office/users": ["notice", "name"],
    "/office/password": ["notice"],
    "/office/account/2fa": ["notice"],
    "/alerts": ["page"],
    "/alerts/{id}": ["lang"],
    "/alerts/{id}.cap.xml": ["lang"],
}
#: Path segments fuzzed in place of an id, a token or a user name.
PATHS = [
    ("GET", "/office/alerts/{}"),
    ("GET", "/office/alerts/{}/edit"),
    ("GET", "/office/alerts/{}/deliveries"),
    ("GET", "/office/contacts/{}"),
    ("POST", "/office/alerts/{}/submit"),
    ("POST", "/office/followups/{}/cancel"),
    ("POST", "/office/users/{}/enable"),
    ("POST", "/office/users/{}/2fa-reset"),
    ("GET", "/alerts/{}"),
    ("GET", "/alerts/{}.cap.xml"),
    ("GET", "/unsubscribe/{}"),
    ("POST", "/preferences/{}"),
    ("POST", "/subscribe/confirm/{}"),
    ("GET", "/t/c/{}"),
]


# ---------------------------------------------------------------- the world being fuzzed


@dataclass
class World:
    app: App
    server: TestServer
    base: str
    client: Client
    pages: list[str]
    stack: Any


async def build_world(db_url: str, stack: AsyncExitStack) -> World:
    settings = (
        Settings()
        .replace("database", url=db_url)
        .replace("server", secret_key=SECRET, public_url="http://alerts.test")
    )
    app = await stack.enter_async_context(open_app(settings, channels={}))
    await make_staff(app)
    now = utcnow()
    async with app.sessions.begin() as session:
        await users.create_user(session, name=FUZZER, role="admin", password=PASSWORD, now=now)
        await add_contacts(session, 3)
        await add_contacts(session, 2, kind="public", list_name="readers", start=10)
        officer = await session.scalar(select(User).where(User.name == "officer"))
        reviewer = await session.scalar(select(User).where(User.name == "reviewer"))
        assert officer is not None and reviewer is not None
        audience = drafts.Audience(
            lists=("urgent-appeals",), kinds=(), channels=("email",), languages=("en",)
        )
        example = RENDERER.example("urgent-appeal")
        draft = await drafts.create_alert(
            session,
            author=officer,
            family="urgent-appeal",
            case_data=example,
            audience=audience,
            is_public=False,
            validate_case=RENDERER.validate_case,
            now=now,
        )
        in_review = await drafts.create_alert(
            session,
            author=officer,
            family="urgent-appeal",
            case_data=example,
            audience=audience,
            is_public=False,
            validate_case=RENDERER.validate_case,
            now=now,
        )
        await approval.submit(session, in_review, user=officer, now=now)
        approved = await approved_alert(session, author=officer, reviewer=reviewer)
        sent = await approved_alert(session, author=officer, reviewer=reviewer, lists=(), kinds=("public",))
        sent.is_public = True
        await approval.record_consent(session, sent, user=reviewer, scope="public", note="", now=now)
        await publish(session, sent, now=now)
        await approval.set_status(session, sent, AlertStatus.SENT, user=None, now=now)
        contact = await session.scalar(select(Contact).where(Contact.kind == "public"))
        assert contact is not None
        ids = [draft.id, in_review.id, approved.id, sent.id]
        await followup_add.add_followup(
            session,
            alert=approved,
            kind="reminder",
            due_at=now.replace(year=now.year + 1),
            user=officer,
            note="call",
            now=now,
        )
    webapp = make_web_app(app)
    # the limits would answer 429 long before the fuzz is done: lift them for it
    state = webapp[auth.AUTH]
    state.limiter = auth.LoginLimiter(limit=10**9)
    state.addresses = auth.LoginLimiter(limit=10**9)
    webapp[public_pages.SUBSCRIBE_LIMITS] = public_pages.SubscribeLimits(
        addresses=auth.LoginLimiter(limit=10**9),
        mails=auth.LoginLimiter(limit=10**9),
        network_mails=auth.LoginLimiter(limit=10**9),
        domain_mails=auth.LoginLimiter(limit=10**9),
    )
    server = TestServer(webapp)
    await server.start_server()
    stack.push_async_callback(server.close)
    base = str(server.make_url("")).rstrip("/")
    client = Client(base)
    stack.push_async_callback(client.close)
    r = await client.sign_in(FUZZER)
    assert r.status == 303, r.status
    signer = Signer(Signing(SECRET))
    link = signer.link_token(contact.token)
    sent_id = sent.id
    pages = [
        "/",
        "/office/alerts/new",
        "/office/contacts",
        "/office/contacts/new",
        "/office/contacts/import",
        "/office/contacts/1",
        "/office/followups",
        "/office/audit",
        "/office/users",
        "/office/password",
        "/office/account/2fa",
        "/login",
        "/subscribe",
        f"/preferences/{link}",
        f"/unsubscribe/{link}",
        f"/subscribe/confirm/{signer.confirm_token(contact)}",
        "/alerts",
        f"/alerts/{sent_id}",
    ]
    for alert_id in ids:
        pages += [
            f"/office/alerts/{alert_id}",
            f"/office/alerts/{alert_id}/edit",
            f"/office/alerts/{alert_id}/deliveries",
        ]
    return World(app, server, base, client, pages, stack)


async def discover(world: World) -> list[Form]:
    """The forms of every page, one per (method, route, fields) — the first page that shows it."""
    found: dict[tuple[str, str, tuple[str, ...]], Form] = {}
    for path in world.pages:
        status, body = await world.client.get(path)
        assert status == 200, (path, status)
        parser = Forms(path)
        parser.feed(body)
        for form in parser.forms:
            if form.action in ("/logout",) or f"/users/{FUZZER}/" in form.action:
                continue  # would end the fuzzer's own session
            names = tuple(sorted({n for n, _ in form.fields} | set(form.files)))
            found.setdefault((form.method, pattern(form.action), names), form)
    return list(found.values())


async def send(
    world: World,
    method: str,
    path: str,
    data: list[tuple[str, Any]] | None = None,
    query: dict[str, str] | None = None,
) -> int:
    c = world.client
    if method == "GET":
        async with c.http.get(
            world.base + path, params=query, allow_redirects=False, headers={"Accept": "text/html"}
        ) as r:
            await r.read()
            return r.status
    r = await c.post(path, data or [])
    return r.status


# ---------------------------------------------------------------- the fuzz


@pytest.mark.timeout(max(300, 60 * (EXAMPLES + 4)))  # the long run takes minutes
def test_no_server_error_from_any_field_of_any_page(db_url: str) -> None:
    background = Background()
    stack = AsyncExitStack()
    errors: list[str] = []
    counts = {"fields": 0, "requests": 0, "forms": 0}
    started = time.monotonic()
    try:
        world = background.run(build_world(db_url, stack))
        forms = background.run(discover(world))
        counts["forms"] = len(forms)
        units: list[tuple[str, Any]] = []
        for form in forms:
            for name, _ in form.fields:
                if name != "csrf_token":
                    units.append(("field", (form, name)))
            for name in form.files:
                units.append(("file", (form, name)))
        covered = {name for kind, (form, name) in units if kind in ("field", "file")}
        for path, params in QUERY.items():
            for name in params:
                units.append(("query", (path, name)))
                covered.add(name)
        for method, template in PATHS:
            units.append(("path", (method, template)))
        missing = names_read_by_handlers() - covered
        assert not missing, f"fields the handlers read that no fuzz unit covers: {sorted(missing)}"

        ids = {"{id}": "2"}

        def run_unit(kind: str, target: Any) -> None:
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                derandomize=SEED is None,
                suppress_health_check=list(HealthCheck),
            )
            @given(value=VALUES, upload=FILES)
            @example(value="²", upload=("\x00.csv", b"\x00"))  # the attacks of issue 14, every field
            @example(value="99999999999999999999999", upload=("../../x.csv", b"name\n" * 3))
            @example(value="a\x00b", upload=("", b"\xff\xfe"))  # no file name: a text part, not UTF-8
            @example(value=DEEP_TOML, upload=("c.csv", DEEP_TOML.encode()))
            def one_example(value: str, upload: tuple[str, bytes]) -> None:
                if kind == "field":
                    form, name = target
                    data = [(n, value if n == name else v) for n, v in form.fields if n != "csrf_token"]
                    data += [(f, ("c.csv", b"name,email\n", "text/csv")) for f in form.files]
                    method, path, query = form.method, form.action, None
                    if method == "GET":
                        query, data = dict(data), None
                elif kind == "file":
                    form, name = target
                    filename, content = upload
                    # aiohttp's client refuses to put a control character in a header (the part's
                    # Content-Disposition): such a name never leaves here, so send it without them
                    filename = re.sub(r"[\x00-\x1f\x7f]", "", filename)
                    data = [(n, v) for n, v in form.fields if n != "csrf_token"]
                    data.append((name, (filename, content, "text/csv")))
                    method, path, query = form.method, form.action, None
                elif kind == "query":
                    template, name = target
                    method, data, query = "GET", None, {name: value}
                    path = template.replace(
                        "{id}", ids["{id}"] if not template.startswith("/alerts/") else "4"
                    )
                else:
                    method, template = target
                    path, data, query = template.format(quote(value, safe="")), [], None
                status = background.run(send(world, method, path, data, query))
                counts["requests"] += 1
                if status >= 500:
                    errors.append(
                        f"{status}: {method} {path} {kind} {target if kind != 'field' else target[1]}={value[:80]!r}"
                    )
                assert status < 500, errors[-1]

            if SEED is not None:
                seed(int(SEED))(one_example)
            one_example()
            counts["fields"] += 1

        for kind, target in units:
            unit_started = time.monotonic()
            run_unit(kind, target)
            if os.environ.get("ALERTS_FUZZ_VERBOSE"):
                print(
                    f"{time.monotonic() - unit_started:6.2f} s  {kind} {target if kind != 'field' else (target[0].action, target[1])}"
                )
            # still signed in (a light page): the next unit's requests reach their handlers too
            status, _ = background.run(world.client.get("/office/password"))
            assert status == 200, f"signed out after fuzzing {kind} {target}"
    finally:
        elapsed = time.monotonic() - started
        print(
            f"\nfuzz: {counts['fields']} fields ({counts['forms']} forms), "
            f"4 + {EXAMPLES} examples per field, {counts['requests']} requests in {elapsed:.0f} s, "
            f"{len(errors)} server errors"
        )
        background.run(stack.aclose())
        background.close()

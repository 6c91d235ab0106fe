"""CSV import and export of contacts, against a real database."""

from __future__ import annotations

import csv
import io
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alerts.contacts.csv_import import EXPORT_COLUMNS, ImportReport, RowError, export_contacts_csv, import_csv
from alerts.contacts.directory import create_contact, update_contact
from alerts.core.errors import ValidationError
from alerts.core.telegram import HINT
from alerts.store.models import Contact, ContactList, ListMember
from tests.conftest import PG_ADMIN_URL

HEADER = "name,email,telegram,kind,language,organisation,country,lists"
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
DATA = Path(__file__).parent / "data"


def csv_bytes(*lines: str, header: str = HEADER) -> io.BytesIO:
    return io.BytesIO(("\n".join([header, *lines]) + "\n").encode("utf-8"))


async def count(sessions: async_sessionmaker[AsyncSession], model: type[object]) -> int:
    async with sessions() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


async def contacts_by_email(sessions: async_sessionmaker[AsyncSession]) -> dict[str | None, Contact]:
    async with sessions() as s:
        return {c.email_key: c for c in await s.scalars(select(Contact))}


async def lists_of(sessions: async_sessionmaker[AsyncSession], email_key: str) -> list[str]:
    async with sessions() as s:
        rows = await s.scalars(
            select(ContactList.name)
            .join(ListMember, ListMember.list_id == ContactList.id)
            .join(Contact, Contact.id == ListMember.contact_id)
            .where(Contact.email_key == email_key)
            .order_by(ContactList.name)
        )
        return list(rows)


async def test_imports_rows_normalised(sessions: async_sessionmaker[AsyncSession]) -> None:
    report = await import_csv(
        sessions,
        csv_bytes(
            "Ana Ruiz,Ana.Ruiz@EXAMPLE.org,,media,ES,Diario,Spain,press; urgent-appeals ;",
            "Ministry,,-1001234567,authority,,,,",
            "Bob,,@bob_channel,public,fr,,,",
        ),
        now=NOW,
    )
    assert (report.total, report.created, report.updated, report.unchanged, report.refused) == (
        3,
        3,
        0,
        0,
        [],
    )
    assert (
        report.summary()
        == "3 rows: 3 created, 0 updated, 0 unchanged, 0 merged with an earlier row, 0 refused"
    )
    by_email = await contacts_by_email(sessions)
    ana = by_email["ana.ruiz@example.org"]
    assert (ana.email, ana.language, ana.kind, ana.organisation, ana.status) == (
        "Ana.Ruiz@example.org",
        "es",
        "media",
        "Diario",
        "active",
    )
    assert ana.created_at == NOW and len(ana.token) == 32
    async with sessions() as s:
        langs = {t: lang for t, lang in await s.execute(select(Contact.telegram, Contact.language)) if t}
        tokens = set(await s.scalars(select(Contact.token)))
    assert langs == {"-1001234567": "en", "@bob_channel": "fr"}
    assert len(tokens) == 3
    assert await lists_of(sessions, "ana.ruiz@example.org") == ["press", "urgent-appeals"]


async def test_bom_semicolons_and_header_case(sessions: async_sessionmaker[AsyncSession]) -> None:
    text = (
        "\ufeffNAME;Email;Telegram;Kind;Language;Organisation;Country;Lists;Title;Form_Of_Address\r\n"
        'Juge Martin;juge@example.org;;authority;fr;Tribunal;France;"press;urgent";Président;Monsieur le Président\r\n'
    )
    report = await import_csv(sessions, io.BytesIO(text.encode("utf-8")))
    assert report.created == 1 and report.refused == []
    judge = (await contacts_by_email(sessions))["juge@example.org"]
    assert (judge.name, judge.title, judge.form_of_address) == (
        "Juge Martin",
        "Président",
        "Monsieur le Président",
    )
    assert await lists_of(sessions, "juge@example.org") == ["press", "urgent"]


async def test_reads_a_path_and_a_pipe(sessions: async_sessionmaker[AsyncSession], tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_bytes(csv_bytes("A,a@example.org,,public,,,,").getvalue())
    assert (await import_csv(sessions, path)).created == 1

    class Pipe(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self.inner = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def seekable(self) -> bool:
            return False

        def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
            data = self.inner.read(len(buffer))
            buffer[: len(data)] = data
            return len(data)

    pipe = io.BufferedReader(Pipe(csv_bytes("B,b@example.org,,public,,,,").getvalue()))
    assert (await import_csv(sessions, pipe)).created == 1  # type: ignore[arg-type]
    assert await count(sessions, Contact) == 2


LONG = "x" * 201
TELEGRAM_REFUSED = f"telegram: {HINT}."


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (",a@example.org,,media,,,,x", "name is required"),
        ("A,,,media,,,,x", "an email or a telegram is required"),
        ("A,not-an-email,,media,,,,x", "email is not a valid address: An email address must have an @-sign."),
        (
            "A,a@b,,media,,,,x",
            (
                "email is not a valid address: The part after the @-sign is not valid. "
                "It should have a period."
            ),
        ),
        ("A,,@abc,media,,,,x", TELEGRAM_REFUSED),
        ("A,,12ab,media,,,,x", TELEGRAM_REFUSED),
        # the Bot API refuses these at send time: refused at import too (@_abcde was accepted)
        ("A,,@_abcde,media,,,,x", TELEGRAM_REFUSED),
        ("A,,@abcde_,media,,,,x", TELEGRAM_REFUSED),
        ("A,,@ab__cde,media,,,,x", TELEGRAM_REFUSED),
        ("A,,0,media,,,,x", TELEGRAM_REFUSED),
        ("A,,99999999999999999999,media,,,,x", TELEGRAM_REFUSED),
        (
            "A,a@example.org,,minister,,,,x",
            "kind 'minister' is not one of authority, media, press, partner, public",
        ),
        ("A,a@example.org,,,,,,x", "kind is required (one of authority, media, press, partner, public)"),
        ("A,a@example.org,,media,xx,,,x", "language 'xx' is not a two-letter ISO 639-1 code"),
        ("A,a@example.org,,media,eng,,,x", "language 'eng' is not a two-letter ISO 639-1 code"),
        (f"{LONG},a@example.org,,media,,,,x", "name is longer than 200 characters"),
        (f"A,a@example.org,,media,,{LONG},,x", "organisation is longer than 200 characters"),
        (f"A,a@example.org,,media,,,{'y' * 65},x", "country is longer than 64 characters"),
        (f"A,a@example.org,,media,,,,ok;{'l' * 101}", "lists is longer than 100 characters"),
        ("A,a@example.org,,media,,,x", "the row has 7 columns, the header 8"),
        ("A,a@example.org,,media,,,,x,extra", "the row has 9 columns, the header 8"),
        ('"A\x07",a@example.org,,media,,,,x', "name: control character U+0007 at position 2 is not allowed"),
        (
            '"A\u202eB",a@example.org,,media,,,,x',
            "name: control character U+202E at position 2 is not allowed",
        ),
    ],
)
async def test_refused_row_reports_reason_and_writes_nothing(
    sessions: async_sessionmaker[AsyncSession], line: str, reason: str
) -> None:
    report = await import_csv(sessions, csv_bytes(line))
    assert report.refused == [RowError(2, reason)]
    assert str(report.refused[0]) == f"row 2: {reason}"
    assert (report.total, report.created) == (1, 0)
    assert await count(sessions, Contact) == 0
    assert await count(sessions, ContactList) == 0


async def test_row_numbers_count_the_header_as_row_one(sessions: async_sessionmaker[AsyncSession]) -> None:
    report = await import_csv(
        sessions,
        csv_bytes(
            "A,a@example.org,,media,,,,",
            "B,,,media,,,,",
            "",  # a blank line: skipped, but it is still a row of the file
            'C,c@example.org,,media,,"multi\nline org",,',
            "D,d@example.org,,nobody,,,,",
        ),
    )
    assert [str(e) for e in report.refused] == [
        "row 3: an email or a telegram is required",
        "row 5: organisation: control character U+000A at position 6 is not allowed",  # over two lines
        "row 6: kind 'nobody' is not one of authority, media, press, partner, public",
    ]
    assert (report.total, report.created) == (4, 1)
    assert set(await contacts_by_email(sessions)) == {"a@example.org"}


@pytest.mark.parametrize(
    ("header", "message", "column"),
    [
        ("email,telegram,kind,language", "row 1: missing column 'name'", "name"),
        (
            "name,kind,lists",
            "row 1: no address column: the file needs an 'email' or a 'telegram' column (or both)",
            "email",
        ),
        (
            "name,email,telegram,kind,language,organisation,country,lists,phone",
            (
                "row 1: unknown column 'phone'; the columns are name, email, telegram, kind, language, "
                "organisation, country, lists, title, form_of_address"
            ),
            "phone",
        ),
        (
            "name,email,EMAIL,telegram,kind,language,organisation,country,lists",
            "row 1: column 'email' appears twice",
            "email",
        ),
    ],
)
async def test_bad_header_refuses_the_file(
    sessions: async_sessionmaker[AsyncSession], header: str, message: str, column: str
) -> None:
    line = ",".join(["A", "a@example.org", "", "media", "", "", "", "", "x"][: header.count(",") + 1])
    with pytest.raises(ValidationError) as caught:
        await import_csv(sessions, csv_bytes(line, header=header), list_name="new-list")
    assert caught.value.message == message
    assert caught.value.details == {"row": 1, "column": column}
    assert await count(sessions, Contact) == 0
    assert await count(sessions, ContactList) == 0


async def test_an_empty_file_and_a_zero_batch_size_are_refused(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    with pytest.raises(
        ValidationError, match=r"^row 1: the file is empty; expected a header line$"
    ) as caught:
        await import_csv(sessions, io.BytesIO(b""))
    assert caught.value.details == {"row": 1}
    with pytest.raises(ValidationError) as caught:
        await import_csv(sessions, csv_bytes("A,a@example.org,,media,,,,"), batch_size=0)
    assert (caught.value.message, caught.value.details) == (
        "batch_size must be at least 1",
        {"field": "batch_size"},
    )


async def test_non_utf8_file_names_the_row_and_writes_nothing(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    lines = [f"P{i},p{i}@example.org,,public,,,," for i in range(1500)]
    body = (HEADER + "\n" + "\n".join(lines) + "\n").encode(
        "utf-8"
    ) + "José,jose@example.org,,public,,,,\n".encode("latin-1")
    with pytest.raises(ValidationError) as caught:
        await import_csv(sessions, io.BytesIO(body), batch_size=100)
    assert caught.value.message == 'row 1502: not valid UTF-8 (byte 0xe9); save the file as "CSV UTF-8"'
    assert await count(sessions, Contact) == 0


async def test_a_header_that_is_not_utf8_is_row_1(sessions: async_sessionmaker[AsyncSession]) -> None:
    body = HEADER.replace("name", "nóm").encode("latin-1") + b"\nP,p@example.org,,public,,,,\n"
    with pytest.raises(ValidationError) as caught:
        await import_csv(sessions, io.BytesIO(body))
    assert (caught.value.message, caught.value.details) == (
        'row 1: not valid UTF-8 (byte 0xf3); save the file as "CSV UTF-8"',
        {"row": 1},
    )
    assert await count(sessions, Contact) == 0


@pytest.mark.parametrize("batch_size", [1, 1000])
async def test_duplicates_in_file_are_merged(
    sessions: async_sessionmaker[AsyncSession], batch_size: int
) -> None:
    report = await import_csv(
        sessions,
        csv_bytes(
            "Ana,ana@example.org,,media,es,Diario,,press",
            "Bob,bob@example.org,,public,,,,",
            "Ana Ruiz,ANA@Example.org,@ana_ruiz,media,,,Spain,urgent",
            "Ana R.,ana@example.org,,,,,,press",
        ),
        batch_size=batch_size,
    )
    assert report.refused == [
        RowError(5, "kind is required (one of authority, media, press, partner, public)")
    ]
    assert (report.total, report.created, report.merged_in_file) == (4, 2, 1)
    ana = (await contacts_by_email(sessions))["ana@example.org"]
    # later non-empty values win; empty cells keep earlier ones
    assert (ana.name, ana.email, ana.telegram, ana.language, ana.organisation, ana.country) == (
        "Ana Ruiz",
        "ANA@example.org",
        "@ana_ruiz",
        "es",
        "Diario",
        "Spain",
    )
    assert await lists_of(sessions, "ana@example.org") == ["press", "urgent"]
    assert await count(sessions, Contact) == 2


async def test_existing_contacts_are_updated_not_duplicated(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as s, s.begin():
        await create_contact(
            s, name="Ana", email="ana@example.org", kind="media", language="es", lists=["press"]
        )
        await create_contact(s, name="Bob", email="bob@example.org", kind="public")
        await create_contact(s, name="Cy", email="cy@example.org", kind="public")
        await update_contact(s, "bob@example.org", status="unsubscribed")
    report = await import_csv(
        sessions,
        csv_bytes(
            "Ana,ANA@example.org,,media,,Diario,,",  # new organisation -> updated; empty language kept
            "Bob,bob@example.org,,public,,,,",  # same -> unchanged (and stays unsubscribed)
            "Cy,cy@example.org,,public,,,,urgent",  # joins a list -> updated
            "Dee,dee@example.org,,public,,,,",
        ),
        now=NOW,
    )
    assert (report.created, report.updated, report.unchanged, report.merged_in_file) == (1, 2, 1, 0)
    by_email = await contacts_by_email(sessions)
    assert (by_email["ana@example.org"].organisation, by_email["ana@example.org"].language) == (
        "Diario",
        "es",
    )
    assert by_email["ana@example.org"].updated_at == NOW
    assert by_email["bob@example.org"].status == "unsubscribed"
    assert await lists_of(sessions, "ana@example.org") == ["press"]
    assert await lists_of(sessions, "cy@example.org") == ["urgent"]


async def test_reimport_is_idempotent_and_late_duplicate_promotes_to_updated(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    lines = [
        "Ana,ana@example.org,,media,,,,press",
        "Chan,,@chan_name,partner,,,,",
        "Grp,,-100200,partner,,,,",
    ]
    first = await import_csv(sessions, csv_bytes(*lines))
    again = await import_csv(sessions, csv_bytes(*lines))
    assert (first.created, again.created, again.unchanged) == (3, 0, 3)
    assert await count(sessions, Contact) == 3
    later = await import_csv(
        sessions, csv_bytes(*lines, "Ana,ana@example.org,,media,,,,urgent"), batch_size=1
    )
    assert (later.unchanged, later.updated, later.merged_in_file) == (2, 1, 1)
    # a row repeated in a later batch without a change stays counted once, unchanged
    repeated = await import_csv(sessions, csv_bytes(*lines, lines[1]), batch_size=1)
    assert (repeated.unchanged, repeated.updated, repeated.merged_in_file) == (3, 0, 1)


async def test_list_name_adds_every_imported_contact(sessions: async_sessionmaker[AsyncSession]) -> None:
    report = await import_csv(
        sessions,
        csv_bytes(
            "A,a@example.org,,public,,,,press",
            "B,b@example.org,,public,,,,",
            "C,,,public,,,,",
        ),
        list_name="campaign-7",
    )
    assert report.created == 2
    assert await lists_of(sessions, "a@example.org") == ["campaign-7", "press"]
    assert await lists_of(sessions, "b@example.org") == ["campaign-7"]


async def test_bulk_import(sessions: async_sessionmaker[AsyncSession]) -> None:
    lines = [
        f"Person {i},person{i}@example.org,{1000 + i if i % 3 == 0 else ''},public,fr,Org {i % 50},,bulk;l{i % 5}"
        for i in range(3000)
    ]
    lines += ["Bad,,,public,,,,", "Person 7,PERSON7@example.org,,public,,,,"]
    started = time.perf_counter()
    report = await import_csv(sessions, csv_bytes(*lines), batch_size=500)
    elapsed = time.perf_counter() - started
    assert (report.total, report.created, report.merged_in_file, len(report.refused)) == (3002, 3000, 1, 1)
    assert await count(sessions, Contact) == 3000
    assert await count(sessions, ListMember) == 6000
    assert elapsed < 15, elapsed


async def analyzed(sessions: async_sessionmaker[AsyncSession]) -> dict[str, int]:
    """How many times each table the import writes was ANALYZEd by hand (not by autovacuum)."""
    async with sessions() as s:
        rows = await s.execute(
            text(
                "SELECT relname, analyze_count FROM pg_stat_user_tables"
                " WHERE relname IN ('contacts', 'list_members', 'lists')"
            )
        )
        return {name: int(n) for name, n in rows}


@pytest.mark.skipif(not PG_ADMIN_URL, reason="needs PostgreSQL (ALERTS_TEST_DATABASE_URL)")
async def test_postgresql_statistics_are_refreshed_after_batches_1_2_4_8(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    before = await analyzed(sessions)
    await import_csv(sessions, csv_bytes("A,a@example.org,,public,,,,press"))
    once = await analyzed(sessions)
    assert {name: n - before.get(name, 0) for name, n in once.items()} == {
        "contacts": 1,
        "list_members": 1,
        "lists": 1,
    }
    lines = [f"P{i},p{i}@example.org,,public,,,,press" for i in range(5)]
    await import_csv(sessions, csv_bytes(*lines), batch_size=1)  # batches 1, 2 and 4 of 5
    assert {name: n - once[name] for name, n in (await analyzed(sessions)).items()} == {
        "contacts": 3,
        "list_members": 3,
        "lists": 3,
    }


async def test_progress_bar_goes_to_stderr(
    sessions: async_sessionmaker[AsyncSession], capsys: pytest.CaptureFixture[str]
) -> None:
    await import_csv(sessions, csv_bytes("A,a@example.org,,public,,,,"), progress=True)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "1/1" in captured.err


async def test_export_protects_formulas_and_round_trips(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as s, s.begin():
        await create_contact(
            s,
            name='=HYPERLINK("http://evil")',
            email="a@example.org",
            kind="public",
            organisation="+33 1 23",
            country="-France",
            lists=["press", "urgent"],
        )
        await create_contact(s, name="Chan", telegram="@chan_name", kind="media", title="@Minister")
        await create_contact(s, name="Group", telegram="-100200", kind="partner", language="fr")
    out = io.StringIO()
    async with sessions() as s:
        assert await export_contacts_csv(s, out) == 3
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert rows[0] == list(EXPORT_COLUMNS)
    assert rows[1] == [
        '\'=HYPERLINK("http://evil")',
        "a@example.org",
        "",
        "public",
        "en",
        "'+33 1 23",
        "'-France",
        "press;urgent",
        "",
        "",
    ]
    assert rows[2][2] == "'@chan_name" and rows[2][8] == "'@Minister"
    assert rows[3][2] == "'-100200"
    again = await import_csv(sessions, io.BytesIO(out.getvalue().encode("utf-8")))
    assert (again.unchanged, again.updated, again.created, again.refused) == (3, 0, 0, [])


async def test_export_of_one_list(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as s, s.begin():
        await create_contact(s, name="A", email="a@example.org", kind="public", lists=["press"])
        await create_contact(s, name="B", email="b@example.org", kind="public")
    out = io.StringIO()
    async with sessions() as s:
        assert await export_contacts_csv(s, out, list_name="press") == 1
    assert "b@example.org" not in out.getvalue()


async def test_demo_contacts_file_imports_cleanly(sessions: async_sessionmaker[AsyncSession]) -> None:
    demo = Path(__file__).parent.parent / "alerts" / "cli" / "demo_data" / "contacts.csv"
    report = await import_csv(sessions, demo)
    assert report.refused == [] and report.created >= 30
    async with sessions() as s:
        kinds = set(await s.scalars(select(Contact.kind)))
        langs = set(await s.scalars(select(Contact.language)))
        authorities = list(await s.scalars(select(Contact).where(Contact.kind == "authority")))
    assert kinds == {"authority", "media", "press", "partner", "public"}
    assert langs == {"en", "fr", "es"}
    assert len(authorities) >= 3 and all(a.title and a.form_of_address for a in authorities)


async def test_fixture_file_with_mixed_rows(sessions: async_sessionmaker[AsyncSession]) -> None:
    report: ImportReport = await import_csv(sessions, DATA / "contacts_mixed.csv")
    assert [str(e) for e in report.refused] == [
        "row 4: email is not a valid address: An email address must have an @-sign.",
        "row 6: language 'english' is not a two-letter ISO 639-1 code",
    ]
    assert (report.created, report.merged_in_file) == (3, 1)


async def test_a_file_without_a_lists_column_puts_no_contact_on_a_list(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    report = await import_csv(sessions, csv_bytes("Ana,ana@example.org,media", header="name,email,kind"))
    assert (report.created, report.refused) == (1, [])
    assert await lists_of(sessions, "ana@example.org") == []
    assert (await count(sessions, ContactList), await count(sessions, ListMember)) == (0, 0)


async def test_an_overlong_line_refuses_the_file_before_parsing(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    data = (HEADER + "\nAna,ana@example.org,,media,en,,,press\n" + "x" * 70_000 + "\n").encode()
    with pytest.raises(ValidationError) as info:
        await import_csv(sessions, io.BytesIO(data))
    assert info.value.message == "line 3: longer than 65,536 bytes; is this a contacts CSV file?"
    assert info.value.details == {"line": 3}
    async with sessions() as session:
        assert (await session.execute(select(func.count()).select_from(Contact))).scalar_one() == 0


async def test_export_names_each_contacts_own_lists_in_name_order(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as s, s.begin():
        await create_contact(s, name="A", email="a@example.org", kind="public", lists=["urgent", "press"])
        await create_contact(s, name="B", email="b@example.org", kind="public", lists=["press"])
    out = io.StringIO()
    async with sessions() as s:
        assert await export_contacts_csv(s, out) == 2
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert [(r[0], r[7]) for r in rows[1:]] == [("A", "press;urgent"), ("B", "press")]
    paged = io.StringIO()  # one contact a page: the count covers every page
    async with sessions() as s:
        assert await export_contacts_csv(s, paged, page_size=1) == 2
    assert paged.getvalue() == out.getvalue()


async def test_an_import_reads_every_stored_contact_past_one_lookups_500(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """More contacts in one batch than one ``IN (...)`` lookup holds (500), by email, by Telegram
    id, and by the id of a contact met in an earlier batch: each is found, none duplicated."""
    lines = [f"P{i},p{i}@example.org,,public,,,," for i in range(601)]
    lines += [f"G{i},,-100{i},partner,,,," for i in range(601)]
    first = await import_csv(sessions, csv_bytes(*lines, *lines), batch_size=len(lines))
    assert (first.created, first.merged_in_file, first.unchanged, first.updated) == (1202, 1202, 0, 0)
    again = await import_csv(sessions, csv_bytes(*lines), batch_size=len(lines))
    assert (again.created, again.unchanged, again.updated) == (0, 1202, 0)
    assert await count(sessions, Contact) == 1202


async def test_an_unchanged_contact_keeps_its_time_of_change(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    before = datetime(2024, 1, 1, tzinfo=UTC)
    await import_csv(
        sessions, csv_bytes("Ana,ana@example.org,,media,,,,", "Bob,bob@example.org,,public,,,,"), now=before
    )
    report = await import_csv(
        sessions,
        csv_bytes("Ana,ana@example.org,,media,,Diario,,", "Bob,bob@example.org,,public,,,,"),
        now=NOW,
    )
    assert (report.updated, report.unchanged) == (1, 1)
    by_email = await contacts_by_email(sessions)
    assert [
        (c.created_at, c.updated_at) for c in (by_email["ana@example.org"], by_email["bob@example.org"])
    ] == [
        (before, NOW),
        (before, before),
    ]


async def test_a_telegram_only_row_is_not_a_contact_that_has_an_email(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Identity is the email, else the Telegram id among contacts without one."""
    async with sessions() as s, s.begin():
        await create_contact(s, name="Ana", email="ana@example.org", telegram="@ana_ruiz", kind="media")
    report = await import_csv(sessions, csv_bytes("Ana's channel,,@ana_ruiz,partner,,,,"))
    assert (report.created, report.updated, report.unchanged) == (1, 0, 0)
    async with sessions() as s:
        rows = await s.execute(select(Contact.email_key, Contact.telegram, Contact.kind).order_by(Contact.id))
        assert [tuple(r) for r in rows] == [
            ("ana@example.org", "@ana_ruiz", "media"),
            (None, "@ana_ruiz", "partner"),
        ]


async def test_a_list_named_in_every_batch_is_made_once_and_an_existing_one_is_joined(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as s, s.begin():
        await create_contact(s, name="Old", email="old@example.org", kind="public", lists=["press"])
    lines = [f"P{i},p{i}@example.org,,public,,,,press;new-list" for i in range(3)]
    report = await import_csv(sessions, csv_bytes(*lines), batch_size=1, now=NOW)
    assert report.created == 3
    async with sessions() as s:
        lists = [
            tuple(r)
            for r in await s.execute(
                select(ContactList.name, ContactList.description).order_by(ContactList.name)
            )
        ]
        assert lists == [("new-list", ""), ("press", "")]
    assert await count(sessions, ListMember) == 7
    assert await lists_of(sessions, "p2@example.org") == ["new-list", "press"]


async def test_an_erased_address_added_to_a_stored_contact_stays_suppressed(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    from alerts.contacts.erasure import erase_contact
    from alerts.contacts.suppressions import is_suppressed

    async with sessions() as s, s.begin():
        gone = await create_contact(s, name="Gone", telegram="@gone_chat", kind="partner")
        await erase_contact(s, gone.id, now=NOW)
        await create_contact(s, name="Ana", email="ana@example.org", kind="media")
    report = await import_csv(
        sessions, csv_bytes("Ana,ana@example.org,@gone_chat,media,,,,", "Bob,bob@example.org,,public,,,,")
    )
    assert (report.updated, report.created, report.previously_erased) == (1, 1, 1)
    assert report.summary().endswith("; 1 previously erased (kept suppressed)")
    async with sessions() as s:
        assert await is_suppressed(s, "telegram", "@gone_chat")
        assert not await is_suppressed(s, "email", "bob@example.org")


async def test_a_cell_holding_a_lone_apostrophe_is_imported_as_written(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Only an apostrophe before a formula character is the export's protection; one alone is data."""
    report = await import_csv(sessions, csv_bytes("Ana Ruiz,ana@example.org,,media,en,',',"), now=NOW)
    assert (report.created, report.refused) == (1, [])
    ana = (await contacts_by_email(sessions))["ana@example.org"]
    assert (ana.organisation, ana.country) == ("'", "'")

"""Real bounce messages (tests/data/bounces/, see its README): how many each source's
messages yield, reported per source and held at what was measured.

"RFC 3464" samples have a ``message/delivery-status`` part; every one of them either names
its recipients or is refused with the reason. The others (qmail, Exim's default, Yahoo…) go
to flufl.bounce's detectors."""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from alerts.core.errors import ValidationError
from alerts.delivery.bounce_scan import read_bounce
from alerts.delivery.bounces import ACTIONS

CORPUS = Path(__file__).parent / "data" / "bounces"
STATUS = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}$")


@dataclass(frozen=True)
class Expected:
    rfc3464: tuple[int, int]  # (read, of)
    other: tuple[int, int]
    refused_rfc3464: dict[str, str]  # file → why (the only RFC 3464 samples not read)


EXPECTED = {
    # measured on main before this parser: RFC 3464 55/104, others 0/58
    "sisimai": Expected(
        rfc3464=(103, 104),
        other=(42, 58),
        refused_rfc3464={"lhost-sendgrid-03.eml": "recipient 1 has no valid Status (like 5.1.1)"},
    ),
    # measured on main before this parser: RFC 3464 8/20, others 0/59
    "flufl.bounce": Expected(rfc3464=(20, 20), other=(56, 59), refused_rfc3464={}),
}


def samples(source: str) -> list[Path]:
    return sorted(p for p in (CORPUS / source).iterdir() if p.name not in ("LICENSE", "README.md"))


def is_rfc3464(raw: bytes) -> bool:
    message = message_from_bytes(raw, policy=policy.compat32)
    return any(part.get_content_type() == "message/delivery-status" for part in message.walk())


@pytest.mark.parametrize("source", sorted(EXPECTED))
def test_parse_rate(source: str, capsys: pytest.CaptureFixture[str]) -> None:
    read = {True: 0, False: 0}
    total = {True: 0, False: 0}
    refused: dict[str, str] = {}
    for path in samples(source):
        raw = path.read_bytes()
        standard = is_rfc3464(raw)
        total[standard] += 1
        try:
            found = read_bounce(raw)
        except ValidationError as exc:
            assert exc.message.startswith(
                ("not a delivery status notification: ", "malformed delivery status notification: ")
            ), path.name
            if standard:
                refused[path.name] = str(exc.details["reason"])
            continue
        read[standard] += 1
        assert found.reports, path.name
        for report in found.reports:
            assert "@" in report.recipient and report.action in ACTIONS, path.name
            assert STATUS.match(report.status), (path.name, report.status)
    with capsys.disabled():
        print(
            f"\n{source}: RFC 3464 {read[True]}/{total[True]} read, "
            f"other bounces {read[False]}/{total[False]} recognised (flufl.bounce)"
        )
    expected = EXPECTED[source]
    assert (read[True], total[True]) == expected.rfc3464
    assert (read[False], total[False]) == expected.other
    assert refused == expected.refused_rfc3464


def test_corpus_is_small_and_licensed() -> None:
    for source in EXPECTED:
        assert (CORPUS / source / "LICENSE").is_file()
        assert f"`{source}/`" in (CORPUS / "README.md").read_text()
    assert sum(p.stat().st_size for p in CORPUS.rglob("*") if p.is_file()) < 1_500_000

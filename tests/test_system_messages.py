"""The one builder of the service's own messages (alerts.delivery.system_messages)."""

from __future__ import annotations

import pytest

from alerts.delivery.system_messages import system_message

BASE = {
    "recipient_name": "Olga <o>",
    "language": "en",
    "subject": "Alert 7 & <b>friends</b>",
    "text": "Review <script>x</script> at https://alerts.example.org/office/alerts/7?a=1&b=2",
    "key": "review-7.v2.u3",
    "sender": "Urgent Alerts <alerts@hrd.example.org>",
}


def test_email_gets_subject_and_text_as_written() -> None:
    message = system_message(channel="email", address="olga@example.org", **BASE)
    content = message.content
    assert (content.channel, content.subject, content.text, content.html) == (
        "email", BASE["subject"], BASE["text"], None,
    )  # fmt: skip
    assert message.message_id == "<review-7.v2.u3@hrd.example.org>"
    assert (message.recipient.address, message.recipient.name, message.recipient.kind) == (
        "olga@example.org", "Olga <o>", "officer",
    )  # fmt: skip
    assert (message.delivery_id, message.alert_id, message.recipient.contact_id) == (0, 0, 0)


def test_telegram_gets_one_escaped_html_text() -> None:
    message = system_message(channel="telegram", address="9001", alert_id=7, **BASE)
    assert message.content.subject == ""
    assert message.content.text == (
        "Alert 7 &amp; &lt;b&gt;friends&lt;/b&gt;\n\n"
        "Review &lt;script&gt;x&lt;/script&gt; at https://alerts.example.org/office/alerts/7?a=1&amp;b=2"
    )
    assert (message.alert_id, message.message_id) == (7, "<review-7.v2.u3@hrd.example.org>")


def test_telegram_text_replaces_subject_and_text_when_given() -> None:
    message = system_message(channel="telegram", address="9001", telegram_text="Due: <alert 7>", **BASE)
    assert message.content.text == "Due: &lt;alert 7&gt;"


def test_a_confirmation_is_to_the_subscriber() -> None:
    message = system_message(
        channel="email", address="p@example.org", kind="public", contact_id=12, **BASE | {"language": "fr"}
    )
    assert (message.recipient.kind, message.recipient.contact_id, message.recipient.language) == (
        "public", 12, "fr",
    )  # fmt: skip
    assert message.content.language == "fr"


@pytest.mark.parametrize("channel", ["press", "webhook"])
def test_only_email_and_telegram(channel: str) -> None:
    with pytest.raises(ValueError, match="email or telegram"):
        system_message(channel=channel, address="x", **BASE)

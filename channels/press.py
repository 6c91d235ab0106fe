"""Press releases: email to press contacts over the email transport, with attachments.

The press form of an alert already carries its embargo line in the rendered text; if a
message names an embargo its text lacks, the line is put first rather than risk a release
going out without it.
"""

from __future__ import annotations

import dataclasses
import ssl
from typing import ClassVar

from alerts.core.config import EmailSettings, PressSettings
from alerts.core.types import RenderedMessage
from channels.email import EmailChannel
from channels.mime import DkimOptions
from channels.smtp_pool import SMTPPool


class PressChannel(EmailChannel):
    """The ``press`` channel: the email channel with the press office as sender."""

    name: ClassVar[str] = "press"
    section: ClassVar[str] = "[press]"

    def __init__(
        self,
        options: EmailSettings,
        press: PressSettings,
        *,
        dkim: DkimOptions | None = None,
        tls_context: ssl.SSLContext | None = None,
        pool: SMTPPool | None = None,
    ) -> None:
        super().__init__(options, dkim=dkim, tls_context=tls_context, pool=pool, from_=press.from_)

    def build(self, message: RenderedMessage) -> tuple[str, bytes]:
        """As for email, making sure the embargo line is in the text."""
        embargo = (message.embargo or "").strip()
        if embargo and embargo not in message.content.text:
            content = dataclasses.replace(message.content, text=f"{embargo}\n\n{message.content.text}")
            message = dataclasses.replace(message, content=content)
        return super().build(message)

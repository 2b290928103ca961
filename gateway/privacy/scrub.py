"""Error texts from destinations, made safe to keep: nothing personal reaches the disk in clear.

A destination's answer is outside our control: a FHIR server's OperationOutcome may quote the
patient's identifier, or the values it refused. Dead letters keep an excerpt of that answer so
an operator can see why an item was refused, so the excerpt is scrubbed before it is stored:
every configured identifier, birth date and device address is masked (the log redactor's
rules), and so is any long run of digits, which is how a personal number looks whether the
hub knows it or not (``19700101-1234``, ``197001011234``, ``7001011234``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from filters.redact import MASK, Redactor

# Six digits or more, optionally split by one '-' or '+' (the Swedish personnummer's
# separators) or spaces: identifiers and dates of birth; short numbers (HTTP codes, counts,
# field positions) stay readable.
LONG_NUMBER = re.compile(r"(?<!\d)\d{6,8}(?:[-+ ]?\d{4})?(?!\d)|(?<!\d)\d{9,}(?!\d)")


class ErrorScrubber:
    """``scrub(text)`` masks what could identify a person in a destination's error text."""

    def __init__(self, personal: Iterable[str]) -> None:
        self._redactor = Redactor(personal)

    def scrub(self, text: str) -> str:
        return LONG_NUMBER.sub(MASK, self._redactor.mask_text(text))

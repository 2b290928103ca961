"""Intake: a decoded reading bound to its person, checked against alert rules, stored, queued."""

"""Privacy: consent (one rule), restriction, subject rights, the audit log, retention, keys."""

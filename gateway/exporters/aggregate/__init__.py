"""The ``aggregate`` kind: anonymous k-suppressed reports, one per closed window."""

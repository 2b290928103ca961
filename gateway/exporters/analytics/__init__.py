"""The ``analytics`` kind: batches of minimised, pseudonymous events."""

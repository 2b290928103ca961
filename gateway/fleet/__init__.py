"""The hub as one of a care provider's fleet: its identity, its status, its signed remote config."""

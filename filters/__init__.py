"""Privacy processors: pure, small callables ``(item, ctx) -> item | None`` with no I/O."""

"""Storage: the one SQLite database and every table in it; no SQL lives outside this package."""

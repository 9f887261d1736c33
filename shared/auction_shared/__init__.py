"""Code every auction service imports: config, JWT, database, broker topology, events, errors."""

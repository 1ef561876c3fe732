"""Ambassador-pattern helpers: local proxies that represent remote services to the app."""

"""The HTTP edge: app factory, configuration, provider adapters, sessions, limits, health, CLI."""

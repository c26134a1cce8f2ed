"""The conversation flows, each a module of screens."""

"""The USSD edge: provider adapters, Redis sessions, and the hop handler that drives the menus."""

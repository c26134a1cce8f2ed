"""SMS callbacks from the provider: inbound messages and delivery reports."""

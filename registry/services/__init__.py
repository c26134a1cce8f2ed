"""Registry services: what the USSD menus, the SMS commands and the CLI may ask of the registry."""

"""The registry: models, identifiers and services for schools, learners, guardians, UPIs, transfers and results."""

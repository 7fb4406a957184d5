"""Authenticators: prove control of identifiers to an ACME CA."""

"""certwright core: ACME issuance, the certificate store, transactions and the CLI."""

__version__ = "0.1.0"

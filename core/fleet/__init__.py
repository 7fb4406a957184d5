"""Certificates for a hosting fleet: an inventory (LDAP or TOML) reconciled with the store.

``certwright fleet sync`` issues what is missing, renews what is due, re-issues on a SAN
change and deletes what is no longer listed; ``fleet status`` reads the store alone;
``fleet schema`` prints the LDAP schema the write-back uses.
"""

"""The certificate store, in Certbot's on-disk format."""

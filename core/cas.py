"""Well-known ACME directory URLs: the default CA and its staging twin, as in Certbot."""

from __future__ import annotations

LE_PRODUCTION = "https://acme-v02.api.letsencrypt.org/directory"
LE_STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"

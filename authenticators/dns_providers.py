"""The DNS providers certwright reaches through dns-lexicon, as data (nothing imported).

``LEXICON``: lexicon's providers (3.x), each a plugin ``dns-NAME`` whose credentials keys
are ``dns_NAME_OPTION`` for each of the provider's lexicon options (``dns_powerdns_auth_token``,
``dns_powerdns_pdns_server``; ``auth_`` may be left out: ``dns_powerdns_token``).

``CERTBOT``: Certbot's own DNS plugins, under their names and with their credentials keys,
so their command lines and renewal confs work unchanged; each maps to a lexicon provider.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class CertbotPlugin:
    """How one of Certbot's DNS plugins maps onto lexicon."""

    provider: str  # lexicon's name
    keys: Mapping[str, str]  # credentials key suffix -> lexicon option
    propagation: int  # Certbot's default --dns-NAME-propagation-seconds
    fixed: Mapping[str, str] = field(default_factory=dict)  # options always given
    credentials: str = "ini"  # "ini", "json" (a file lexicon reads), "optional" (ini)


CERTBOT: Mapping[str, CertbotPlugin] = {
    "cloudflare": CertbotPlugin("cloudflare", {"api_token": "auth_token",
                                               "email": "auth_username",
                                               "api_key": "auth_token"}, 10),
    "digitalocean": CertbotPlugin("digitalocean", {"token": "auth_token"}, 10),
    "dnsimple": CertbotPlugin("dnsimple", {"token": "auth_token"}, 30),
    "dnsmadeeasy": CertbotPlugin("dnsmadeeasy", {"api_key": "auth_username",
                                                 "secret_key": "auth_token"}, 60),
    "gehirn": CertbotPlugin("gehirn", {"api_token": "auth_token",
                                       "api_secret": "auth_secret"}, 30),
    "google": CertbotPlugin("googleclouddns", {}, 60, credentials="json"),
    "linode": CertbotPlugin("linode4", {"key": "auth_token", "version": ""}, 120),
    "luadns": CertbotPlugin("luadns", {"email": "auth_username", "token": "auth_token"}, 30),
    "nsone": CertbotPlugin("nsone", {"api_key": "auth_token"}, 30),
    "ovh": CertbotPlugin("ovh", {"endpoint": "auth_entrypoint",
                                 "application_key": "auth_application_key",
                                 "application_secret": "auth_application_secret",
                                 "consumer_key": "auth_consumer_key"}, 120),
    "route53": CertbotPlugin("route53", {"access_key_id": "auth_access_key",
                                         "secret_access_key": "auth_access_secret"}, 10,
                             credentials="optional"),
    "sakuracloud": CertbotPlugin("sakuracloud", {"api_token": "auth_token",
                                                 "api_secret": "auth_secret"}, 90),
}

LEXICON = (
    "aliyun", "arvancloud", "aurora", "azure", "cloudflare", "cloudns", "cloudxns", "conoha",
    "constellix", "ddns", "desec", "devnomads", "digitalocean", "dinahosting", "directadmin",
    "dnsimple", "dnsmadeeasy", "dnspark", "dnspod", "dnsservices", "dreamhost", "duckdns",
    "dynu", "easydns", "easyname", "euserv", "exoscale", "flexibleengine", "gandi", "gehirn",
    "glesys", "godaddy", "googleclouddns", "gransy", "gratisdns", "henet", "hetzner",
    "hostingde", "hover", "httpnet", "infoblox", "infomaniak", "internetbs", "inwx", "ionos",
    "joker", "linode", "linode4", "localzone", "luadns", "memset", "misaka", "mythicbeasts",
    "namecheap", "namecom", "namesilo", "netcup", "nfsn", "njalla", "nsone", "oci", "onapp",
    "online", "ovh", "plesk", "pointhq", "porkbun", "powerdns", "qcloud", "rackspace",
    "rage4", "rcodezero", "regfish", "route53", "safedns", "sakuracloud", "scaleway",
    "softlayer", "timeweb", "transip", "ultradns", "valuedomain", "vercel", "vultr", "wedos",
    "yandex", "yandexcloud", "zeit", "zilore", "zonomi",
)


def plugin_names() -> list[str]:
    """Every ``dns-NAME`` plugin this module gives (Certbot's names win a clash)."""
    return sorted({f"dns-{n}" for n in (*CERTBOT, *LEXICON)})

"""The LDAP schema of the write-back: the auxiliary class ``certwrightDomain``.

OIDs: certwright's attributes and class sit under a UUID-based arc (ITU-T X.667,
``2.25.<128-bit UUID as an integer>``), which anyone may use without registering; a hoster
with a Private Enterprise Number replaces it with ``certwright fleet schema --oid-base``.
Below the arc: ``.1.N`` attribute types, ``.2.1`` the object class.
"""

from __future__ import annotations

from dataclasses import dataclass

OID_BASE = "2.25.105802551315226613473159585391663850040"
DIRECTORY_STRING = "1.3.6.1.4.1.1466.115.121.1.15"
IA5_STRING = "1.3.6.1.4.1.1466.115.121.1.26"
GENERALIZED_TIME = "1.3.6.1.4.1.1466.115.121.1.24"
BOOLEAN = "1.3.6.1.4.1.1466.115.121.1.7"
OBJECT_CLASS = "certwrightDomain"


@dataclass(frozen=True)
class Attribute:
    number: int
    name: str
    desc: str
    rules: str
    syntax: str


ATTRIBUTES = (
    Attribute(1, "certwrightWebroot", "directory served as the web root of the domain",
              "EQUALITY caseExactMatch", DIRECTORY_STRING),
    Attribute(2, "certwrightCertificate", "PEM certificate and chain",
              "EQUALITY caseExactIA5Match", IA5_STRING),
    Attribute(3, "certwrightNotAfter", "end of the validity of the certificate",
              "EQUALITY generalizedTimeMatch ORDERING generalizedTimeOrderingMatch",
              GENERALIZED_TIME),
    Attribute(4, "certwrightStatus", "valid, failed, precheck-failed or pending",
              "EQUALITY caseIgnoreMatch", DIRECTORY_STRING),
    Attribute(5, "certwrightError", "why the last attempt failed, one line",
              "EQUALITY caseExactMatch", DIRECTORY_STRING),
    Attribute(6, "certwrightRedirect", "TRUE once https is served",
              "EQUALITY booleanMatch", BOOLEAN),
    Attribute(7, "certwrightLastAttempt", "when certwright last asked the CA",
              "EQUALITY generalizedTimeMatch ORDERING generalizedTimeOrderingMatch",
              GENERALIZED_TIME),
    Attribute(8, "certwrightInstaller", "certwright installer serving the domain (nginx, "
              "apache)", "EQUALITY caseIgnoreMatch", DIRECTORY_STRING),
)
READ = ("certwrightWebroot", "certwrightInstaller")  # the hoster's; never written
WRITTEN = tuple(a.name for a in ATTRIBUTES if a.name not in READ)


def _check_base(base: str) -> str:
    parts = base.split(".")
    if len(parts) < 2 or not all(p.isascii() and p.isdigit() for p in parts):
        raise ValueError(f"--oid-base {base!r} is not a numeric OID (like 1.3.6.1.4.1.N)")
    return base


def attribute_definitions(base: str = OID_BASE) -> list[str]:
    base = _check_base(base)
    return [f"( {base}.1.{a.number} NAME '{a.name}' DESC '{a.desc}' {a.rules} "
            f"SYNTAX {a.syntax} SINGLE-VALUE )" for a in ATTRIBUTES]


def class_definition(base: str = OID_BASE) -> str:
    may = " $ ".join(a.name for a in ATTRIBUTES)
    return (f"( {_check_base(base)}.2.1 NAME '{OBJECT_CLASS}' DESC 'a domain certwright "
            f"keeps certificates for' SUP top AUXILIARY MAY ( {may} ) )")


def ldif(base: str = OID_BASE) -> str:
    """The schema as an entry for slapd's ``cn=config`` (``ldapadd -Y EXTERNAL`` or
    ``slapadd -n 0``)."""
    lines = ["dn: cn=certwright,cn=schema,cn=config", "objectClass: olcSchemaConfig",
             "cn: certwright"]
    lines += [f"olcAttributeTypes: {d}" for d in attribute_definitions(base)]
    lines.append(f"olcObjectClasses: {class_definition(base)}")
    return "\n".join(lines) + "\n"


def schema_file(base: str = OID_BASE) -> str:
    """The classic ``.schema`` form (``include`` in slapd.conf)."""
    out = [f"# certwright write-back schema; OID arc {base}"]
    out += [f"attributetype {d}" for d in attribute_definitions(base)]
    out.append(f"objectclass {class_definition(base)}")
    return "\n".join(out) + "\n"

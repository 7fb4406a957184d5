"""A real OpenLDAP slapd on loopback, from its own temp ``cn=config`` tree.

    with Slapd(workdir) as ldap:
        ldap.add_ldif(...)            # entries under ldap.suffix, as the root DN
        ldap.ldap_url / ldap.ldaps_url, ldap.root_dn, ldap.password_file, ldap.ca_file

certwright binds as ``bind_dn`` (write access, no root privileges: the size limit of
``size_limit`` entries applies to unpaged searches), except to entries with
``description: read-only`` (a write-back that fails); the tests' own edits use the root DN.
The suffix is generated (``dc=t<random>,dc=test``); the schemas loaded are core, cosine,
inetorgperson, certwright's own (the LDIF ``certwright fleet schema`` prints) and a small
"hoster" schema with the ``letsencrypt`` flag the tests' inventory uses. slapd listens on
``ldap://`` (StartTLS offered) and ``ldaps://`` with a certificate from a throwaway CA
(``ca_file``). It runs in the foreground (``-d``) as a child of the test and is stopped by
its pid.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from pathlib import Path
from typing import ClassVar

from certwright.core.fleet.schema import ldif as certwright_schema_ldif
from tests.servers.ports import free_port
from tests.servers.tlsca import make_tls_files
from tests.servers.tree_server import TreeServer

SLAPD_BINARY = "/usr/sbin/slapd"
SLAPADD_BINARY = "/usr/sbin/slapadd"
SCHEMA_DIR = Path("/etc/ldap/schema")
MODULE_DIR = "/usr/lib/ldap"

HOSTER_SCHEMA = """\
dn: cn=hoster,cn=schema,cn=config
objectClass: olcSchemaConfig
cn: hoster
olcAttributeTypes: ( 2.25.42424242.1.1 NAME 'letsencrypt' DESC 'the domain wants https'
  EQUALITY booleanMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.7 SINGLE-VALUE )
"""

CONFIG = """\
dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: {root}/run/slapd.pid
olcArgsFile: {root}/run/slapd.args
olcTLSCertificateFile: {tls_cert}
olcTLSCertificateKeyFile: {tls_key}
olcSizeLimit: size.soft={size_limit} size.hard={size_limit} size.pr={size_limit}
  size.prtotal=unlimited

dn: cn=module{{0}},cn=config
objectClass: olcModuleList
cn: module{{0}}
olcModulePath: {modules}
olcModuleLoad: back_mdb

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

{schemas}
dn: olcDatabase={{-1}}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {{-1}}frontend
olcAccess: {{0}}to * by * read

dn: olcDatabase={{0}}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {{0}}config
olcAccess: {{0}}to * by * none

dn: olcDatabase={{1}}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {{1}}mdb
olcDbDirectory: {root}/db
olcSuffix: {suffix}
olcRootDN: {root_dn}
olcRootPW: {password}
olcDbMaxSize: 1073741824
olcAccess: {{0}}to filter=(description=read-only) by * read
olcAccess: {{1}}to * by dn.exact="{bind_dn}" write by * read
"""


class Slapd(TreeServer):
    """slapd serving a fresh suffix; ``size_limit`` caps unpaged searches (as servers do)."""

    name: ClassVar[str] = "slapd"
    scratch = ("run", "db", "server.out")

    def __init__(self, root: Path, *, size_limit: int = 500, initial_ldif: str = "") -> None:
        """``initial_ldif``: entries under the suffix loaded with slapadd before the start
        (thousands in a second; ``{suffix}`` is filled in)."""
        super().__init__(root)
        self.initial_ldif = initial_ldif
        self.port = free_port(self.host)
        self.tls_port = free_port(self.host)
        self.size_limit = size_limit
        self.suffix = f"dc=t{secrets.token_hex(4)},dc=test"
        self.root_dn = f"cn=admin,{self.suffix}"
        self.bind_dn = f"cn=certwright,{self.suffix}"  # what certwright binds as: no
        # root privileges, so the server's size limits apply to it
        self.password = secrets.token_urlsafe(16)
        self.password_file = self.root / "bind.pw"
        self.tls = make_tls_files(self.root / "tls")
        for sub in ("run", "db", "slapd.d"):
            (self.root / sub).mkdir(exist_ok=True)

    @property
    def ldap_url(self) -> str:
        return f"ldap://{self.host}:{self.port}"

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://{self.host}:{self.tls_port}"

    @property
    def ca_file(self) -> Path:
        return self.tls.ca_cert

    def ports(self) -> tuple[int, ...]:
        return (self.port, self.tls_port)

    def command(self) -> list[str]:
        urls = f"{self.ldap_url}/ {self.ldaps_url}/"
        return [SLAPD_BINARY, "-d", "0", "-h", urls, "-F", str(self.root / "slapd.d")]

    def launch(self) -> None:
        self.password_file.write_text(self.password + "\n")
        self.password_file.chmod(0o600)
        schemas = [(SCHEMA_DIR / f"{n}.ldif").read_text()
                   for n in ("core", "cosine", "inetorgperson")]
        schemas += [certwright_schema_ldif(), HOSTER_SCHEMA]
        text = CONFIG.format(
            root=self.root, tls_cert=self.tls.fullchain, tls_key=self.tls.key,
            modules=MODULE_DIR, suffix=self.suffix, root_dn=self.root_dn,
            password=self.password, size_limit=self.size_limit, bind_dn=self.bind_dn,
            schemas="\n".join(s.rstrip("\n") + "\n" for s in schemas))
        config = self.root / "config.ldif"
        config.write_text(text)
        shutil.rmtree(self.root / "slapd.d")
        (self.root / "slapd.d").mkdir()
        _run([SLAPADD_BINARY, "-n", "0", "-F", str(self.root / "slapd.d"), "-l", str(config)])
        base = self.root / "base.ldif"
        base.write_text(f"dn: {self.suffix}\nobjectClass: dcObject\nobjectClass: organization\n"
                        f"dc: {self.suffix.split(',')[0][3:]}\no: certwright tests\n\n"
                        f"dn: {self.bind_dn}\nobjectClass: organizationalRole\n"
                        f"objectClass: simpleSecurityObject\ncn: certwright\n"
                        f"userPassword: {self.password}\n\n"
                        + self.initial_ldif.replace("{suffix}", self.suffix))
        _run([SLAPADD_BINARY, "-n", "1", "-F", str(self.root / "slapd.d"), "-l", str(base)])
        super().launch()

    def args(self) -> list[str]:
        """certwright fleet options that point at this server (StartTLS, the test CA)."""
        return ["--ldap-url", self.ldap_url, "--bind-dn", self.bind_dn,
                "--bind-password-file", str(self.password_file), "--base-dn", self.suffix,
                "--ldap-ca-file", str(self.ca_file)]

    def connection(self) -> object:
        """An ldap3 connection bound as the root DN (plain loopback, for the tests' own
        reads and edits)."""
        import ldap3

        server = ldap3.Server(self.host, port=self.port)
        return ldap3.Connection(server, self.root_dn, self.password, auto_bind=True)


def _run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}):\n"
                           f"{done.stdout}\n{done.stderr}")

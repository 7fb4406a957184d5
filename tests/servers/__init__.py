"""Real servers for the tests, on loopback, each from its own temp tree.

- :mod:`.tree_server`: ``TreeServer``, the base of every server run from a config tree
  (template, start, reload, stop, snapshot, CLI arguments);
  :mod:`.nginx` (``NginxServer``; ``Nginx`` serves a web root), :mod:`.nginx_tree`
  (``NginxTree``, Debian's layout) and :mod:`.mail` (``Postfix``, ``Dovecot``) build on it.
- :mod:`.probe`: what a server answers (HTTP with SNI, the certificate served over https,
  STARTTLS or implicit TLS).
- DNS: :mod:`.bind` (named with a TSIG key and dynamic zones, RFC 2136) and
  :mod:`.powerdns` (pdns_server, sqlite3 backend, HTTP API), each a resolver for Pebble.
- CAs: :mod:`.pebble`, :mod:`.acme_front`; helpers: :mod:`.ports`, :mod:`.process`,
  :mod:`.tlsca`, :mod:`.http01`, :mod:`.dnsquery`, :mod:`.fsperm`.
- :mod:`.haproxy`: ``Haproxy``, master-worker HAProxy with a real backend (a ``TreeServer``);
  :mod:`.tlsload`: a steady stream of new TLS connections, failures counted.
"""

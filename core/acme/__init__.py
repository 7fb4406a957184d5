"""RFC 8555 plumbing: messages, JWS, transport and the client."""

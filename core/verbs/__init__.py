"""The verbs: one module per command family, on top of the services (flow, session,
deploy, hooks, ...) and called by the command line (``commands``) and the library
(``api``)."""

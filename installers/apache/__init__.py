"""Apache httpd support: reading a configuration tree (:mod:`.tree`, :mod:`.evaluate`) and
choosing the virtual hosts that answer a name (:mod:`.select`), as Apache itself does.

Nothing here writes files; the deploy planner builds on these readings.
"""

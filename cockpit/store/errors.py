"""The store's one error type: what is wrong with which store, and how to proceed."""

from __future__ import annotations

# Said after every "the store is damaged" message: the ways out a user has.
WAY_OUT = ("restore a backup, or start the platform again from the world file with `cockpit --reset` "
           "(it forgets every host, order and task)")


class StoreError(Exception):
    """The store cannot be opened or used; the message says which and why."""

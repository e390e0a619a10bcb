"""Schedules in the shell: firing their ticks, and managing them (docs/events.md).

The decisions (next tick, catch-up, overlap) are pure, in
:mod:`legato.machine.schedules`; the rows are the store's
:class:`~legato.store.ports.ScheduleStore` role.
"""

"""Flow control in the worker: admission of steps through rate and concurrency limits.

The declarations and the token-bucket arithmetic are pure and live in
:mod:`legato.machine.limits`; this package is the shell around them: the
weighted priority order shared by the dispatcher and the limits
(:mod:`legato.flow.stride`), the gates steps wait at (:mod:`legato.flow.gates`),
the waiting room that owns them while they wait (:mod:`legato.flow.waiting`)
and the admission that parks and wakes them (:mod:`legato.flow.admission`).
See docs/flow-control.md.
"""

from legato.flow.admission import Admission, AdmissionSettings, Permit
from legato.flow.waiting import WaitingRoom

__all__ = ["Admission", "AdmissionSettings", "Permit", "WaitingRoom"]

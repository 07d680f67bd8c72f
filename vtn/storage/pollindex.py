"""What an oadrPoll needs to answer "nothing for you" without touching the database, and
whose certificate a request comes from, on the embedded engine.

Most polls find nothing waiting. On the embedded SQLite engine this process is the only writer of
the file (docs/architecture.md#storage-and-scale: one process per SQLite VTN), so it can know, in
memory, which certificate belongs to which registration and which VENs have nothing undelivered;
such a poll is then
answered on the event loop with no thread handoff and no SQL. On PostgreSQL several workers share
the queues: each worker's index is kept true by the others' notifications
(:mod:`vtn.storage.notify`), and it is *suspended* (knows nothing, learns nothing: every poll
reads) whenever those notifications may be missed -- until the listening connection is up, and
from the moment it is lost until it is back.

Invariants (all calls happen on the storage's event loop, after the write they report committed):
- Knowledge is learned only from a database read (or a poll's delivery transaction, which looks
  after marking what it hands out), and only if no write that could contradict it committed while
  that read was in flight: every committed registration change bumps ``_registrations`` and every
  committed enqueue bumps ``_enqueues``; a read remembers both counters before it starts
  (:meth:`ticket`) and :meth:`learn` (:meth:`handed_out`) drops its answer if one it rests on
  moved.
- A VEN is "quiet" only if the read saw nothing undelivered in its outbox (claimed-but-unmarked
  items count as undelivered, so a lease that runs out is found again by the next poll). After
  a fan-out, the delivery that handed a VEN its event list thus also spares its next poll the
  read.
- An enqueue un-quiets its VENs and marks them "waiting": their next polls go straight to the
  write that takes an item, without a read first. "Waiting" may be wrong only the harmless way
  (that write then finds nothing, and teaches "quiet"); marking an item delivered clears it.
- A registration write forgets the registration of the certificate it wrote (every one when a
  failed write left that unknown): nothing one VEN's registration says is part of another's, so
  a registration storm leaves every other VEN's polls answered from memory. Any registration
  write still voids every read in flight (one counter; a read it overtook only has to read again
  at its next poll).
- Losing the index (a restart) only costs reads: it starts empty and knows nothing.
- :meth:`resume` forgets everything and moves both counters, so no read that began while the
  index was suspended can teach it anything.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .records import VenRegistration

__all__ = ["PollIndex", "PollTicket"]


@dataclass(frozen=True, slots=True)
class PollTicket:
    """The write counters as they stood when a poll's database read began."""

    registrations: int
    enqueues: int


class PollIndex:
    __slots__ = ("_by_fingerprint", "_enqueues", "_live", "_quiet", "_registrations", "_waiting")

    def __init__(self, *, live: bool = True) -> None:
        self._by_fingerprint: dict[str, VenRegistration] = {}
        self._quiet: set[str] = set()
        self._waiting: set[str] = set()
        self._registrations = 0
        self._enqueues = 0
        self._live = live  # False: suspended (see resume and suspend)

    @property
    def live(self) -> bool:
        return self._live

    def suspend(self) -> None:
        """Changes may go unnoticed from now on: know nothing, learn nothing."""
        self._live = False
        self._forget()

    def resume(self) -> None:
        """Every change is noticed again from now on: start learning, from nothing."""
        self._forget()
        self._live = True

    def _forget(self) -> None:
        self._registrations += 1
        self._enqueues += 1
        self._by_fingerprint.clear()
        self._quiet.clear()
        self._waiting.clear()

    def quiet_registration(self, fingerprint: str) -> VenRegistration | None:
        """The certificate's registration if it is known and its VEN has nothing waiting."""
        registration = self._by_fingerprint.get(fingerprint)
        if registration is None or registration.ven_id not in self._quiet:
            return None
        return registration

    def waiting_registration(self, fingerprint: str) -> VenRegistration | None:
        """The certificate's registration if it is known and an item was queued for its VEN
        since it was last handed one: its poll goes to take it without reading first."""
        registration = self._by_fingerprint.get(fingerprint)
        if registration is None or registration.ven_id not in self._waiting:
            return None
        return registration

    def registration(self, fingerprint: str) -> VenRegistration | None:
        """The certificate's registration, if known (whatever waits in its outbox)."""
        return self._by_fingerprint.get(fingerprint)

    def ticket(self) -> PollTicket:
        return PollTicket(self._registrations, self._enqueues)

    def learn(self, ticket: PollTicket, fingerprint: str, registration: VenRegistration | None,
              waiting: bool | None = None) -> None:
        """Remember what a read that began at ``ticket`` found, unless a write overtook it;
        ``waiting`` None: the read did not look at the outbox."""
        if (registration is None or not self._live
                or ticket.registrations != self._registrations):
            return
        self._by_fingerprint[fingerprint] = registration
        if waiting is False and ticket.enqueues == self._enqueues:
            self._quiet.add(registration.ven_id)

    def handed_out(self, ticket: PollTicket, ven_id: str, waiting: bool) -> None:
        """A poll's delivery that began at ``ticket`` marked what it handed ``ven_id`` delivered,
        then saw whether anything is still ``waiting`` for it; dropped if an enqueue overtook
        it."""
        if ticket.enqueues != self._enqueues or not self._live:
            return
        if waiting:
            self._waiting.add(ven_id)
        else:
            self._waiting.discard(ven_id)
            self._quiet.add(ven_id)

    def delivered(self, ven_id: str) -> None:
        """An item of ``ven_id`` was marked delivered: whether more waits is for a read to say."""
        self._waiting.discard(ven_id)

    def enqueued(self, ven_ids: Iterable[str]) -> None:
        """Items for ``ven_ids`` committed: their next polls must take them."""
        self._enqueues += 1
        ven_ids = tuple(ven_ids)
        self._quiet.difference_update(ven_ids)
        self._waiting.update(ven_ids)

    def everyone_enqueued(self) -> None:
        """Items for VENs not named (too many for one notification) committed: nobody is
        known quiet any more."""
        self._enqueues += 1
        self._quiet.clear()

    def registration_changed(self, fingerprint: str | None) -> None:
        """The registration of the certificate ``fingerprint`` was written: forget it (None:
        a write of unknown certificate, forget them all), re-learned at its next poll."""
        self._registrations += 1
        if fingerprint is None:
            self._by_fingerprint.clear()
        else:
            self._by_fingerprint.pop(fingerprint, None)

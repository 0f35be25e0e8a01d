"""[hooks]: a command for every job that reaches TRANSFERRED, ERROR or ACKNOWLEDGED, read from the event log."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from bitscli.daemon import notify
from bitscli.events import STATE, Event
from bitscli.model import JobState
from bitscli.store import Queue, QueueError, open_queue

log = logging.getLogger("bitscli.daemon")

MARK = "hooks"  # daemon_marks: the last event the hooks have run for
WHEN = {"TRANSFERRED": "on_transferred", "ERROR": "on_error", "ACKNOWLEDGED": "on_complete"}
BATCH = 50


def argv(template: tuple[str, ...], event: Event) -> tuple[str, ...]:
    """The hook's argv with {id}, {name}, {state} and {error} filled in; no other brace is touched."""
    values = {"{id}": event.job_id, "{name}": event.name, "{state}": event.to_state or "",
              "{error}": event.message or ""}  # fmt: skip
    out = []
    for word in template:
        for placeholder, value in values.items():
            word = word.replace(placeholder, value)
        out.append(word)
    return tuple(out)


class Hooks:
    """Reads the event log past its mark, and runs the matching hooks one after another on a thread of its own.

    The mark moves in the transaction that records each run, so a daemon that restarts goes on from there (a
    hook cut off by a crash runs again: at least once). A queue with no mark yet starts at its newest event:
    the hooks do not replay history.
    """

    def __init__(self, queue_path: Path) -> None:
        self.queue_path = queue_path
        self.thread: threading.Thread | None = None
        self._stamp: tuple[int, int] | None = None  # the queue's stamp at the last read that left nothing behind

    def start_due(self, queue: Queue, hooks: dict[str, tuple[str, ...]], allowed: bool) -> None:
        if not hooks or (self.thread is not None and self.thread.is_alive()):
            return
        stamp = queue.stamp()
        if stamp == self._stamp:
            return  # nothing committed since a read that found every event handled: no query this tick
        with queue.read() as tx:
            mark = tx.mark(MARK)
            due = [] if mark is None else tx.events(after_seq=mark, limit=BATCH)
        self._stamp = stamp if len(due) < BATCH else None  # a full batch: more may wait past it
        if mark is None:
            with queue.write() as tx:
                tx.set_mark(MARK, tx.last_event())
            return
        work = [(e, WHEN[e.to_state]) for e in due if e.kind == STATE and e.to_state in WHEN]
        last = due[-1].seq if due else mark
        if not allowed and work:
            log.warning("[hooks] not run: notify.allow_notify_command_line = false forbids command lines")
            work = []
        if not work and last == mark:
            return
        self.thread = threading.Thread(target=self._run, args=(work, hooks, last), name="hooks", daemon=True)
        self.thread.start()

    def _run(self, work: list[tuple[Event, str]], hooks: dict[str, tuple[str, ...]], last: int) -> None:
        queue = open_queue(self.queue_path, durable=False)  # this thread's own connection
        try:
            for event, name in work:
                template = hooks.get(name)
                if template is None:
                    continue
                words = argv(template, event)
                state = JobState[event.to_state or "ERROR"]
                status = notify.run(notify.Launch(event.job_id, state, words, words[0], what=f"hook {name}"))
                with queue.write() as tx:
                    job = tx.job_header(event.job_id)
                    if job is not None:
                        tx.record_notify(job, state, status, hook=name)
                    tx.set_mark(MARK, event.seq)
            with queue.write() as tx:
                if (tx.mark(MARK) or 0) < last:
                    tx.set_mark(MARK, last)  # the events no hook was for
        except QueueError as exc:
            log.error("[hooks]: %s", exc.message)
        except Exception:
            log.exception("[hooks]")
        finally:
            queue.close()

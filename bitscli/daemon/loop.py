"""The daemon loop: one instance per queue; each tick applies timers, schedules jobs, starts and stops workers."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from bitscli import config, events
from bitscli import policy as bandwidth_policy
from bitscli.clock import Clock
from bitscli.daemon import hooks, notify, scheduler, transitions, wakeup
from bitscli.daemon.bandwidth import Bandwidth
from bitscli.daemon.worker import Worker
from bitscli.errors import ConfigError, QueueError
from bitscli.model import ACTIVE_STATES, Job, JobPriority, JobState
from bitscli.partfiles import discard_all
from bitscli.policy import Policy
from bitscli.store import open_queue

log = logging.getLogger("bitscli.daemon")

DEFAULT_SLICE_SECONDS = 300.0  # equal priorities take turns this often (BITS does not document its slice)
POLL_SECONDS = 0.05  # how often the queue's data_version is checked, for changes no nudge announced (wakeup)
TICK_SECONDS = 1.0  # ticks happen at least this often, for timers and slices
# Where commands nudge the daemon, a change nobody announced is mostly this daemon's own workers saving
# progress many times a second in a job of small files: ticking for each (a tick reads every live job) takes
# the CPU and the GIL from the transfer. Such changes wait until this long after the last tick.
UNANNOUNCED_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 30.0  # the longest wait between tries of a queue that cannot be written (a full disk)


class Daemon:
    def __init__(
        self, queue_path: Path, clock: Clock, slice_seconds: float = DEFAULT_SLICE_SECONDS,
        inactivity_seconds: float = 90 * 86_400, allow_notify: bool = True, wake: wakeup.Listener | None = None,
        bandwidth_policy: Policy | None = None, config_path: Path | None = None,
    ) -> None:  # fmt: skip
        self.queue_path = queue_path
        self.allow_notify = allow_notify  # the notify.allow_notify_command_line policy
        self.inactivity_seconds = inactivity_seconds
        self.policy = bandwidth_policy or Policy()
        self.config_path = config_path  # watched: a change applies at the next tick, no restart
        # Without a policy given, the first tick reads the file; with one, it was read from this very file.
        self._config_seen = _stamp(config_path) if bandwidth_policy is not None else (-1, -1)
        self.reload_requested = threading.Event()  # SIGHUP
        self.background_threads = False  # from the config file: background workers at a low CPU and I/O priority
        self.workers_paused_until = 0.0  # monotonic: no worker starts before (the queue could not be written)
        self._worker_backoff = 0.0
        self.clock = clock
        self.slice_seconds = slice_seconds
        self.queue = open_queue(queue_path, durable=False)
        self.workers: dict[str, Worker] = {}
        self.bandwidth = Bandwidth()  # the one limiter: every worker's reads and sends pass it
        self.cancelling: dict[str, threading.Thread] = {}  # Cancel-Session for cancelled upload jobs
        self.notifying: dict[str, threading.Thread] = {}  # notification command lines being run
        self.hooks = hooks.Hooks(queue_path)
        self._logged_event: int | None = None  # the last event written to the daemon's log
        self._events_stamp: tuple[int, int] | None = None
        self.hook_commands: dict[str, tuple[str, ...]] = {}  # the config's [hooks]
        self.current: scheduler.Slice | None = None
        self.stop_event = threading.Event()
        self.wake = wake or wakeup.Listener(bind=False)  # the CLI's nudges, where the platform allows them
        self._headers: list[Job] = []  # the live jobs as last read, and the queue's stamp then
        self._headers_stamp: tuple[int, int] | None = None

    def tick(self) -> scheduler.Plan:
        """One pass: timers, jobs left active by a stopped worker or a crash, then the schedule."""
        for job_id in [j for j, w in self.workers.items() if not w.is_alive()]:
            del self.workers[job_id]
        now = self.clock.now()
        jobs = [job for job in self._job_headers() if job.corrupt is None]  # a corrupt job waits for its cancel
        abandoned: list[Job | None] = []
        if any(self._due(job, now) is not job for job in jobs):
            with self.queue.write() as tx:
                jobs = tx.job_headers()
                for i, job in enumerate(jobs):
                    new = self._due(job, now)
                    if new is not job:
                        tx.update_header(new)
                        jobs[i] = new
                        log.info("job %s: %s -> %s", job.id, job.state.name, new.state.name)
                        if new.state is JobState.CANCELLED:
                            abandoned.append(tx.job(job.id))
        for gone in abandoned:  # an abandoned job's part files go with it, as on cancel
            if gone is not None:
                discard_all(gone)
        self._reload_if_changed()
        allowed = {j.id: bandwidth_policy.allowed(self.policy, j, now) for j in jobs if j.state in ACTIVE_STATES}
        # A cap of 0 is a wait, not an error: those jobs stay QUEUED until their window opens (bits.md §5); so
        # does a job whose start jitter has not run out.
        runnable = [j for j in jobs if (j.id not in allowed or allowed[j.id].rate != 0)
                    and (j.not_before is None or j.not_before <= now)]  # fmt: skip
        plan = scheduler.choose(runnable, self.current, self.clock.monotonic(), self.slice_seconds)
        self.current = plan.background
        for job_id, worker in self.workers.items():
            if job_id not in plan.job_ids and not worker.stopping.is_set():
                log.info("job %s: stopping its transfer", job_id)
                worker.stop()
        # BITS yields idle bandwidth to other traffic for every priority but FOREGROUND (bits.md §3).
        yielding = frozenset(j.id for j in jobs if j.id in plan.job_ids and j.priority is not JobPriority.FOREGROUND
                             and self.policy.yield_to_others)  # fmt: skip
        self.bandwidth.set_rates(
            {job_id: allowed[job_id].rate or 0 for job_id in plan.job_ids if job_id in allowed}, yielding
        )
        paused = self.clock.monotonic() < self.workers_paused_until  # a worker met a queue it could not write
        for job_id in set() if paused else plan.job_ids - set(self.workers):
            log.info("job %s: starting its transfer", job_id)
            worker = Worker(self.queue_path, job_id, self.clock, self.bandwidth, self.background_threads,
                            self._pause_workers)  # fmt: skip
            self.workers[job_id] = worker
            worker.start()
        self._cancel_sessions()
        self._notifications(jobs, now)
        self.hooks.start_due(self.queue, self.hook_commands, self.allow_notify)
        self._log_events()
        return plan

    def _log_events(self) -> None:
        """The event log's new entries, the CLI's included, into the daemon's log (from where it started)."""
        stamp = self.queue.stamp()
        if stamp == self._events_stamp:
            return
        self._events_stamp = stamp
        with self.queue.read() as tx:
            if self._logged_event is None:
                self._logged_event = tx.last_event()  # the past is in `bitscli events`, not repeated here
                return
            for event in tx.events(after_seq=self._logged_event):
                events.log_line(event)
                self._logged_event = event.seq

    def _pause_workers(self) -> None:
        """A worker could not write the queue: no worker starts for a while, doubling while it goes on."""
        now = self.clock.monotonic()
        self._worker_backoff = min(MAX_BACKOFF_SECONDS, max(1.0, self._worker_backoff * 2))
        if now >= self.workers_paused_until + MAX_BACKOFF_SECONDS:
            self._worker_backoff = 1.0  # the trouble had passed: this is a new one
        self.workers_paused_until = now + self._worker_backoff

    def _reload_if_changed(self) -> None:
        """The config file, again when it changed or SIGHUP asked; a bad one leaves the last good policy."""
        if self.config_path is None:
            return
        stamp = _stamp(self.config_path)
        if stamp == self._config_seen and not self.reload_requested.is_set():
            return
        self._config_seen = stamp
        self.reload_requested.clear()
        try:
            settings = config.load(self.config_path)
        except ConfigError as exc:
            log.error("config file not reloaded, the last good policy stays: %s", exc.message)
            return
        self.policy = settings.bandwidth
        self.allow_notify = settings.allow_notify_command_line
        self.inactivity_seconds = settings.job_inactivity_days * 86_400
        self.background_threads = settings.background_threads
        self.hook_commands = settings.hooks
        log.info("config file reloaded: %s", self.config_path)

    def _job_headers(self) -> list[Job]:
        """Every live job's header: read again only when the queue may have changed since the last tick.

        Most ticks come from the clock, for timers, with nothing changed: reading and decoding every header of
        a big queue each time was most of an idle daemon's CPU. The stamp is taken before the read, so a commit
        racing it only causes one more read.
        """
        stamp = self.queue.stamp()
        if stamp != self._headers_stamp:
            with self.queue.read() as tx:  # headers only, and no write lock unless something changes
                self._headers = tx.job_headers()
            self._headers_stamp = stamp
        return list(self._headers)

    def _notifications(self, jobs: list[Job], now: float) -> None:
        """Run the command lines of jobs that reached TRANSFERRED or ERROR, each on its own thread."""
        for job_id in [j for j, t in self.notifying.items() if not t.is_alive()]:
            del self.notifying[job_id]
        if not self.allow_notify:
            return
        for job in jobs:
            launch = notify.due(job, now)
            if launch is None or job.id in self.notifying:
                continue
            thread = threading.Thread(target=self._notify, args=(launch,), name=f"notify-{job.id}", daemon=True)
            self.notifying[job.id] = thread
            thread.start()

    def _notify(self, launch: notify.Launch) -> None:
        status = notify.run(launch)
        queue = open_queue(self.queue_path, durable=False)  # this thread's own connection
        try:
            with queue.write() as tx:
                job = tx.job_header(launch.job_id)
                if job is None or job.state.is_final:
                    return
                tx.record_notify(job, launch.state, status)
                new = notify.record(job, launch, status == 0, self.clock.now())
                if new is not job:  # a job that moved on meanwhile needs no write
                    tx.update_header(new)
        except QueueError as exc:  # it runs again: the state it ran for was not recorded
            log.error("job %s: recording its notification: %s", launch.job_id, exc.message)
        except Exception:
            log.exception("job %s: recording its notification", launch.job_id)
        finally:
            queue.close()

    def _cancel_sessions(self) -> None:
        """A cancelled upload job's session is cancelled on the server too, once its worker has stopped."""
        for job_id in [j for j, t in self.cancelling.items() if not t.is_alive()]:
            del self.cancelling[job_id]
        with self.queue.read() as tx:
            pending = tx.sessions_to_cancel()
        for job_id in pending:
            if job_id in self.cancelling or job_id in self.workers:
                continue
            from bitscli.daemon import uploads  # deferred: it loads the transfer engine

            thread = threading.Thread(
                target=uploads.cancel_session, args=(self.queue_path, job_id, self.clock, self.stop_event),
                name=f"cancel-{job_id}", daemon=True,
            )  # fmt: skip
            self.cancelling[job_id] = thread
            thread.start()

    def _due(self, job: Job, now: float) -> Job:
        """Timers, and a job left active with no worker (stopped, or the daemon crashed) back to QUEUED."""
        new = transitions.timers(job, now, self.inactivity_seconds)
        return new if job.id in self.workers else transitions.requeue(new, now)

    def run(self) -> None:
        """Tick when nudged, at least every TICK_SECONDS, and for changes to the queue nobody announced."""
        seen = None
        nudged = True  # the first tick is at once
        next_tick = quiet_until = backoff = 0.0
        try:
            while not self.stop_event.is_set():
                try:
                    version = self.queue.data_version()
                    now = self.clock.monotonic()
                    # Without nudges (no AF_UNIX), every change must be looked at as soon as it is seen.
                    unannounced = version != seen and (not self.wake.listening or now >= quiet_until)
                    if nudged or unannounced or now >= next_tick:
                        # Taken before the tick reads the queue: a change committed during the tick brings one
                        # more tick, instead of being counted as seen without having been read.
                        seen = version
                        self.tick()
                        now = self.clock.monotonic()
                        next_tick, quiet_until = now + TICK_SECONDS, now + UNANNOUNCED_SECONDS
                        backoff = 0.0
                except QueueError as exc:
                    # A full or read-only state disk: what was committed stays committed; the daemon waits and
                    # tries again, and goes on once the disk has room (nothing is lost by waiting).
                    backoff = min(MAX_BACKOFF_SECONDS, max(1.0, backoff * 2))
                    log.error("the queue cannot be used (%s); trying again in %.0f s", exc.message, backoff)
                    self.stop_event.wait(backoff)
                    continue
                nudged = self.wake.wait(POLL_SECONDS, self.stop_event)
        finally:
            self.shutdown()

    def shutdown(self, timeout: float = 30.0) -> None:
        """Stop every transfer with its progress saved; running jobs go back to QUEUED."""
        for worker in self.workers.values():
            worker.stop()
        for thread in [*self.workers.values(), *self.cancelling.values()]:
            thread.join(timeout)
        self.workers.clear()
        now = self.clock.now()
        try:
            with self.queue.write() as tx:
                for job in tx.job_headers():
                    new = transitions.requeue(job, now)
                    if new is not job:
                        tx.update_header(new)
        except QueueError as exc:  # the next start requeues them (a job left active with no worker)
            log.error("daemon stopping without requeueing its jobs: %s", exc.message)
        self.queue.close()
        log.info("daemon stopped")


def _stamp(path: Path | None) -> tuple[int, int] | None:
    """The file's modification time and size; None when there is none (all defaults)."""
    if path is None:
        return None
    try:
        found = path.stat()
    except OSError:
        return None
    return found.st_mtime_ns, found.st_size

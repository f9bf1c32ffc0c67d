"""Concurrent execution: send many requests from a bounded pool of threads over an ``HttpClient``.

This is requests-toolbelt's ``threaded`` API (``Pool``, ``ThreadResponse``, ``ThreadException``,
``map``) with the same names, running every job through :meth:`HttpClient.request
<requestforge.HttpClient.request>` so the client's hooks, auth and retries apply to each one.
What it fixes:

* **Nothing is lost, everything is ordered.** The jobs are drained from the queue when the pool
  is built, into a list; job ``i`` writes slot ``i`` of a preallocated result list, and
  :meth:`Pool.responses`, :meth:`Pool.exceptions` and :meth:`Pool.results` wait for every job
  before yielding, in input order. (toolbelt 1.0.0's generators read queues the workers are
  still filling and can stop early, toolbelt issue #381; its results come in completion order.)
* **One result per job, always.** A worker turns every ``Exception`` a job raises (a transport
  error, a bad job dict, a hook that blows up) into that job's :class:`ThreadException` and
  carries on; toolbelt's workers die on anything that is not a ``requests`` exception and leave
  the rest of the queue unanswered. (toolbelt 1.0.0 also starts each worker before the worker
  has its result queues, so a fast first response can crash it with ``AttributeError``.)
* **Bounded and tidy.** At most ``num_processes`` threads and never more than there are jobs;
  non-daemon threads named ``requestforge-pool-N``; each worker thread has exactly one session,
  initialized once, closed when the pool is done.

Workers start when the pool is constructed (as in toolbelt), so the requests are under way
while the caller does something else; :meth:`Pool.join_all` only waits.

Prefer :meth:`HttpClient.map <requestforge.HttpClient.map>` for new code: one call, one result
per input in input order. The module-level :func:`map` exists as a drop-in replacement for
``requests_toolbelt.threaded.map`` (responses and exceptions as two separate iterators).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import Any, NoReturn, TypeAlias

import requests

from requestforge._client import HttpClient
from requestforge._exceptions import (
    ConfigurationError,
    InvalidRequestError,
    RequestForgeError,
)
from requestforge._redact import redact_url
from requestforge._response import HttpResponse
from requestforge._validate import count, instance, valid_callable
from requestforge._verbs import RequestOptions

__all__ = ["JobResult", "Pool", "ThreadException", "ThreadResponse", "map"]

logger = logging.getLogger("requestforge")

#: The keys a job dict may have: ``method`` (default GET), ``url``, and the keyword arguments
#: of :meth:`HttpClient.request <requestforge.HttpClient.request>`.
_OPTION_KEYS = tuple(sorted(RequestOptions.__optional_keys__))
JOB_KEYS = frozenset({"method", "url", *_OPTION_KEYS})
_NO_KWARGS: Mapping[str, Any] = MappingProxyType({})


def _read_only(obj: object, *args: object) -> NoReturn:
    raise AttributeError(f"{type(obj).__name__} is read-only")


def _describe(request_kwargs: Mapping[str, Any]) -> str:
    """``GET http://host/path`` for a repr: method and redacted URL, never headers or body."""
    method = request_kwargs.get("method", "GET")
    url = request_kwargs.get("url")
    shown = redact_url(url) if isinstance(url, str) else "?"
    return f"{str(method).upper()} {shown}"


class ThreadResponse:
    """One job's response: use it as the :class:`~requestforge.HttpResponse` it wraps.

    Attribute access falls through to the response (``status_code``, ``json()``, ``headers``,
    ``raise_for_status()`` ...), as with toolbelt. ``request_kwargs`` is the job, read-only;
    ``index`` its position in the input.
    """

    __slots__ = ("index", "request_kwargs", "response")

    #: The job that produced this response (a read-only copy of the dict that was queued).
    request_kwargs: Mapping[str, Any]
    #: The wrapped response.
    response: HttpResponse
    #: The job's position in the input, from 0.
    index: int

    def __init__(
        self, request_kwargs: Mapping[str, Any], response: HttpResponse, index: int
    ) -> None:
        object.__setattr__(self, "request_kwargs", request_kwargs)
        object.__setattr__(self, "response", response)
        object.__setattr__(self, "index", index)

    __setattr__ = _read_only
    __delattr__ = _read_only

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ThreadResponse.__slots__:
            raise AttributeError(name)
        return getattr(self.response, name)

    @property
    def status_code(self) -> int:
        """The response's status code."""
        return self.response.status_code

    @property
    def headers(self) -> Mapping[str, str]:
        """The response's headers."""
        return self.response.headers

    @property
    def content(self) -> bytes:
        """The response's body."""
        return self.response.content

    @property
    def text(self) -> str:
        """The response's body, decoded."""
        return self.response.text

    @property
    def url(self) -> str:
        """The URL the response came from."""
        return self.response.url

    def json(self) -> Any:
        """The response's body parsed as JSON (raises ``ResponseDecodeError`` if it is not)."""
        return self.response.json()

    def __repr__(self) -> str:
        return (
            f"<ThreadResponse #{self.index} [{self.response.status_code}] "
            f"{_describe(self.request_kwargs)}>"
        )


class ThreadException:
    """The exception one job raised, with the job that raised it.

    ``message`` is ``str(exception)``; other attribute access falls through to the exception
    (``response``, ``request`` ... of a :class:`~requestforge.RequestForgeError`), as with
    toolbelt. Pass a collection of these to :meth:`Pool.from_exceptions` to run them again.
    """

    __slots__ = ("exception", "index", "message", "request_kwargs")

    #: The job that raised (a read-only copy of the dict that was queued).
    request_kwargs: Mapping[str, Any]
    #: The exception the job raised.
    exception: BaseException
    #: ``str(exception)``.
    message: str
    #: The job's position in the input, from 0.
    index: int

    def __init__(
        self, request_kwargs: Mapping[str, Any], exception: BaseException, index: int
    ) -> None:
        object.__setattr__(self, "request_kwargs", request_kwargs)
        object.__setattr__(self, "exception", exception)
        object.__setattr__(self, "message", str(exception))
        object.__setattr__(self, "index", index)

    __setattr__ = _read_only
    __delattr__ = _read_only

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ThreadException.__slots__:
            raise AttributeError(name)
        return getattr(self.exception, name)

    def __repr__(self) -> str:
        error = self.exception
        # requestforge's own messages are redacted; anyone else's might quote a secret.
        detail = f": {self.message}" if isinstance(error, RequestForgeError) else ""
        return (
            f"<ThreadException #{self.index} {_describe(self.request_kwargs)} "
            f"{type(error).__name__}{detail}>"
        )


#: What a pool produces for each job.
JobResult: TypeAlias = ThreadResponse | ThreadException


def _check_job(request_kwargs: Mapping[str, Any]) -> tuple[Any, str]:
    """Validate one job; return its method and URL or raise ``InvalidRequestError``."""
    unknown = request_kwargs.keys() - JOB_KEYS
    if unknown:
        raise InvalidRequestError(
            f"unsupported request argument(s) {', '.join(sorted(repr(k) for k in unknown))}; "
            f"a job may have {', '.join(sorted(JOB_KEYS))}"
        )
    url = request_kwargs.get("url")
    if not isinstance(url, str) or not url:
        raise InvalidRequestError(f"a job needs a 'url' string, got {url!r}")
    return request_kwargs.get("method", "GET"), url


def _default_num_processes() -> int:
    """What ``ThreadPoolExecutor`` uses: I/O-bound work, so a few more threads than CPUs."""
    return min(32, (os.cpu_count() or 1) + 4)


class Pool:
    """Runs a queue of request dicts on a bounded pool of threads over one ``HttpClient``.

    :param job_queue: request dicts (``method``, ``url`` and any of ``params``, ``headers``,
        ``json``, ``data``, ``timeout``). It is drained when the pool is built; the order
        it yields them in is the input order. Jobs put on it later are not run.
    :param client: the client whose config (base URL, hooks, auth, retries, timeouts) every
        job goes through. Without one, a default ``HttpClient()`` is used and closed when the
        pool is done; a client you pass is never closed by the pool.
    :param num_processes: how many worker threads (toolbelt's name): by default
        ``min(32, os.cpu_count() + 4)``, like ``ThreadPoolExecutor``, and never more than
        there are jobs. Must be at least 1.
    :param initializer: called with each worker thread's new session, once; returns the
        session to use (or ``None`` to keep the one it was given, which it may have changed).
    :param auth_generator: called after ``initializer`` on the same session, in the same way.
    :param session: makes the base session of each worker thread, instead of the client's
        own (which carries the client's TLS and connection-pool settings).

    With ``initializer``, ``auth_generator`` or ``session``, the jobs run on a private
    ``HttpClient`` with the same config whose per-thread sessions come from
    ``auth_generator(initializer(session()))``; it is closed when the pool is done.

    Workers start here, at construction. Every result method waits for all of them first.
    """

    def __init__(
        self,
        job_queue: queue.Queue[Any],
        *,
        client: HttpClient | None = None,
        num_processes: int | None = None,
        initializer: Callable[[requests.Session], requests.Session | None] | None = None,
        auth_generator: Callable[[requests.Session], requests.Session | None] | None = None,
        session: Callable[[], requests.Session] | None = None,
    ) -> None:
        if num_processes is not None:
            count("num_processes", num_processes, minimum=1)
        if not callable(getattr(job_queue, "get_nowait", None)):
            raise ConfigurationError(
                f"job_queue must be a queue.Queue, got {type(job_queue).__name__}; "
                "use Pool.from_requests() for a list of request dicts"
            )
        if client is not None:
            instance("client", client, HttpClient)
        for name, factory in (
            ("initializer", initializer),
            ("auth_generator", auth_generator),
            ("session", session),
        ):
            if factory is not None:
                valid_callable(name, factory)

        self._job_queue = job_queue
        # Read-only copies, so changing a queued dict later changes nothing; a job that is not
        # a mapping gets empty request_kwargs and, when run, an InvalidRequestError.
        self._jobs: list[Mapping[str, Any]] = []
        self._not_mappings: dict[int, str] = {}
        while True:
            try:
                job = job_queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(job, Mapping):
                self._jobs.append(MappingProxyType(dict(job)))
            else:
                self._not_mappings[len(self._jobs)] = type(job).__name__
                self._jobs.append(_NO_KWARGS)
        jobs = len(self._jobs)
        self._results: list[JobResult | None] = [None] * jobs
        self._next_job = 0
        self._lock = threading.Lock()
        self._cursors: dict[str, Iterator[Any]] = {}

        self._owned: list[HttpClient] = []
        if client is None:
            client = HttpClient()
            self._owned.append(client)
        if initializer is not None or auth_generator is not None or session is not None:
            client = HttpClient(
                client.config,
                session_factory=_session_factory(client, initializer, auth_generator, session),
            )
            self._owned.append(client)
        self._client = client

        wanted = min(num_processes or _default_num_processes(), jobs)
        self._workers: list[threading.Thread] = []
        self._live = wanted
        self._start_workers(wanted)

    def _start_workers(self, wanted: int) -> None:
        for number in range(wanted):
            worker = threading.Thread(
                target=self._work, name=f"requestforge-pool-{number}", daemon=False
            )
            try:
                worker.start()
            except RuntimeError:  # "can't start new thread": make do with those running
                with self._lock:
                    self._live -= wanted - number
                    finished = self._live == 0
                if number == 0:
                    self._close_owned()
                    raise
                logger.warning("pool started %d of %d worker threads", number, wanted)
                if finished:
                    self._close_owned()
                return
            self._workers.append(worker)
        if wanted == 0:
            self._close_owned()

    # -- constructors ------------------------------------------------------------------

    @classmethod
    def from_requests(
        cls,
        requests: Iterable[Mapping[str, Any]],
        *,
        client: HttpClient | None = None,
        num_processes: int | None = None,
        initializer: Callable[[requests.Session], requests.Session | None] | None = None,
        auth_generator: Callable[[requests.Session], requests.Session | None] | None = None,
        session: Callable[[], requests.Session] | None = None,
    ) -> Pool:
        """A pool running each request dict of ``requests``, in order."""
        if isinstance(requests, Mapping | str | bytes):
            raise InvalidRequestError(
                f"expected an iterable of request dicts, got one {type(requests).__name__}"
            )
        job_queue: queue.Queue[Mapping[str, Any]] = queue.Queue()
        for job in requests:
            job_queue.put(job)
        return cls(
            job_queue,
            client=client,
            num_processes=num_processes,
            initializer=initializer,
            auth_generator=auth_generator,
            session=session,
        )

    @classmethod
    def from_urls(
        cls,
        urls: Iterable[str],
        request_kwargs: Mapping[str, Any] | None = None,
        *,
        client: HttpClient | None = None,
        num_processes: int | None = None,
        initializer: Callable[[requests.Session], requests.Session | None] | None = None,
        auth_generator: Callable[[requests.Session], requests.Session | None] | None = None,
        session: Callable[[], requests.Session] | None = None,
    ) -> Pool:
        """A pool sending ``GET`` (or ``request_kwargs["method"]``) to each URL, with the
        other ``request_kwargs`` added to every job."""
        if isinstance(urls, str | bytes):
            raise InvalidRequestError(f"expected an iterable of URLs, got the string {urls!r}")
        base = {"method": "GET", **(request_kwargs or {})}
        return cls.from_requests(
            [{**base, "url": url} for url in urls],
            client=client,
            num_processes=num_processes,
            initializer=initializer,
            auth_generator=auth_generator,
            session=session,
        )

    @classmethod
    def from_exceptions(
        cls,
        exceptions: Iterable[ThreadException],
        *,
        client: HttpClient | None = None,
        num_processes: int | None = None,
        initializer: Callable[[requests.Session], requests.Session | None] | None = None,
        auth_generator: Callable[[requests.Session], requests.Session | None] | None = None,
        session: Callable[[], requests.Session] | None = None,
    ) -> Pool:
        """A pool running again the jobs that raised ``exceptions``, in the order given.

        Check first that a job is safe to repeat: a ``POST`` may have reached the server.
        """
        return cls.from_requests(
            [dict(exc.request_kwargs) for exc in exceptions],
            client=client,
            num_processes=num_processes,
            initializer=initializer,
            auth_generator=auth_generator,
            session=session,
        )

    # -- the workers -------------------------------------------------------------------

    def _work(self) -> None:
        try:
            while True:
                with self._lock:
                    index = self._next_job
                    if index >= len(self._jobs):
                        return
                    self._next_job = index + 1
                try:
                    self._results[index] = self._run(index)
                finally:
                    self._job_queue.task_done()
        finally:
            with self._lock:
                self._live -= 1
                finished = self._live == 0
            if finished:
                self._close_owned()

    def _run(self, index: int) -> JobResult:
        request_kwargs = self._jobs[index]
        try:
            if index in self._not_mappings:
                raise InvalidRequestError(
                    f"a job must be a dict of request arguments, got {self._not_mappings[index]}"
                )
            method, url = _check_job(request_kwargs)
            options = {key: request_kwargs[key] for key in _OPTION_KEYS if key in request_kwargs}
            response = self._client.request(method, url, **options)
        except Exception as error:  # noqa: BLE001 - the job's result, not the worker's end
            return ThreadException(request_kwargs, error, index)
        except BaseException as error:  # SystemExit in a hook: record it, then let it stop us
            self._results[index] = ThreadException(request_kwargs, error, index)
            raise
        return ThreadResponse(request_kwargs, response, index)

    def _close_owned(self) -> None:
        for client in reversed(self._owned):
            client.close()

    # -- results -----------------------------------------------------------------------

    @property
    def num_processes(self) -> int:
        """How many worker threads this pool started."""
        return len(self._workers)

    def join_all(self) -> None:
        """Wait until every job has its result. Safe to call again, and from several threads.

        If the wait is interrupted (Ctrl-C), the workers take no new job: they finish the
        ones in flight and end, and the jobs never started get a "not run" ThreadException.
        """
        try:
            for worker in self._workers:
                worker.join()
        except BaseException:
            with self._lock:
                self._next_job = len(self._jobs)
            raise

    def results(self) -> list[JobResult]:
        """Wait for every job, then one result per job, in input order."""
        self.join_all()
        return [self._result(index) for index in range(len(self._jobs))]

    def _result(self, index: int) -> JobResult:
        result = self._results[index]
        if result is None:  # join_all was interrupted, or a BaseException stopped the workers
            error = RequestForgeError(
                "the job was not run: the pool was interrupted or its worker threads stopped"
            )
            return ThreadException(self._jobs[index], error, index)
        return result

    def responses(self) -> Iterator[ThreadResponse]:
        """Wait for every job, then yield the responses in input order."""
        self.join_all()
        for index in range(len(self._jobs)):
            result = self._result(index)
            if isinstance(result, ThreadResponse):
                yield result

    def exceptions(self) -> Iterator[ThreadException]:
        """Wait for every job, then yield the exceptions in input order."""
        self.join_all()
        for index in range(len(self._jobs)):
            result = self._result(index)
            if isinstance(result, ThreadException):
                yield result

    def get_response(self) -> ThreadResponse | None:
        """The next response in input order, or ``None`` when there are no more (toolbelt's API).

        Waits for every job first. Its cursor is separate from :meth:`responses`, which
        always yields them all.
        """
        response: ThreadResponse | None = self._next_from("responses", self.responses)
        return response

    def get_exception(self) -> ThreadException | None:
        """The next exception in input order, or ``None`` when there are no more (toolbelt's API).

        Waits for every job first. Its cursor is separate from :meth:`exceptions`.
        """
        exception: ThreadException | None = self._next_from("exceptions", self.exceptions)
        return exception

    def _next_from(self, name: str, source: Callable[[], Iterator[Any]]) -> Any:
        self.join_all()
        with self._lock:
            cursor = self._cursors.get(name)
            if cursor is None:
                cursor = self._cursors[name] = iter(list(source()))
            return next(cursor, None)

    def __repr__(self) -> str:
        done = all(not worker.is_alive() for worker in self._workers)
        return (
            f"<Pool jobs={len(self._jobs)} num_processes={len(self._workers)} "
            f"{'done' if done else 'running'}>"
        )


def _session_factory(
    client: HttpClient,
    initializer: Callable[[requests.Session], requests.Session | None] | None,
    auth_generator: Callable[[requests.Session], requests.Session | None] | None,
    session: Callable[[], requests.Session] | None,
) -> Callable[[], requests.Session]:
    """``auth_generator(initializer(base()))``, where a callback returning ``None`` keeps the
    session it was given (toolbelt's own example initializer returns nothing)."""
    # The client's own factory: its TLS and pool settings, or the custom factory it was given.
    base = session if session is not None else client._session_factory

    def make() -> requests.Session:
        made = base()
        for callback in (initializer, auth_generator):
            if callback is not None:
                returned = callback(made)
                made = made if returned is None else returned
        return made

    return make


def map(
    requests: Iterable[Mapping[str, Any]],
    *,
    client: HttpClient | None = None,
    num_processes: int | None = None,
    initializer: Callable[[requests.Session], requests.Session | None] | None = None,
    auth_generator: Callable[[requests.Session], requests.Session | None] | None = None,
    session: Callable[[], requests.Session] | None = None,
) -> tuple[Iterator[ThreadResponse], Iterator[ThreadException]]:
    """Drop-in for ``requests_toolbelt.threaded.map``: run ``requests`` on a :class:`Pool`,
    wait for all of them, and return ``(responses, exceptions)``, each in input order.

    Prefer :meth:`HttpClient.map <requestforge.HttpClient.map>`: it returns one result per
    input in a single list, so you never have to match the two iterators up again. Unlike
    toolbelt, an empty ``requests`` gives two empty iterators, and a job that is not a dict
    becomes a ``ThreadException`` instead of failing the whole call.
    """
    pool = Pool.from_requests(
        requests,
        client=client,
        num_processes=num_processes,
        initializer=initializer,
        auth_generator=auth_generator,
        session=session,
    )
    pool.join_all()
    return pool.responses(), pool.exceptions()

"""TransferThreads: a thread per running transfer, reused for the next one, ended when idle."""

from __future__ import annotations

import threading
import time

from freight.daemon.threads import TransferThreads


def wait_until(fn, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if fn():
            return True
        time.sleep(0.005)
    return False


def test_jobs_run_at_once_each_on_its_own_thread():
    threads = TransferThreads()
    release = threading.Event()
    running: list[str] = []

    def job() -> None:
        running.append(threading.current_thread().name)
        release.wait(5)

    for n in range(4):
        threads.run(f"transfer-{n}", job)
    assert wait_until(lambda: len(running) == 4), running  # none waits for another
    assert sorted(running) == [f"transfer-{n}" for n in range(4)]
    release.set()
    assert wait_until(lambda: threads.idle == 4)


def test_a_finished_thread_takes_the_next_transfer():
    threads = TransferThreads()
    seen: list[int] = []
    done = threading.Event()
    threads.run("transfer-1", lambda: (seen.append(threading.get_ident()), done.set()))
    assert done.wait(5)
    assert wait_until(lambda: threads.idle == 1)
    before = threading.active_count()
    done.clear()
    threads.run("transfer-2", lambda: (seen.append(threading.get_ident()), done.set()))
    assert done.wait(5)
    assert seen[0] == seen[1]  # the same thread, no new one started
    assert threading.active_count() == before


def test_a_failing_job_does_not_end_the_thread_and_idle_threads_end():
    threads = TransferThreads(idle_exit=0.2)
    done = threading.Event()

    def boom() -> None:
        raise RuntimeError("a bug in a transfer")

    before = threading.active_count()
    threads.run("transfer-1", boom)
    assert wait_until(lambda: threads.idle == 1)
    threads.run("transfer-2", done.set)  # the thread that saw the error runs the next job
    assert done.wait(5)
    assert threading.active_count() == before + 1
    assert wait_until(lambda: threads.idle == 0 and threading.active_count() == before)


def test_loop_hop_keeps_the_order_and_joins_calls_made_while_it_is_on_its_way() -> None:
    import asyncio

    from freight.daemon.threads import LoopHop

    async def main() -> tuple[list[int], int]:
        loop = asyncio.get_running_loop()
        seen: list[int] = []
        hop = LoopHop(loop, seen.append)
        wakeups = 0
        real = loop.call_soon_threadsafe

        def counted(*args: object) -> object:
            nonlocal wakeups
            wakeups += 1
            return real(*args)  # type: ignore[arg-type]

        loop.call_soon_threadsafe = counted  # type: ignore[method-assign]
        sender = threading.Thread(target=lambda: [hop(i) for i in range(100)])
        sender.start()
        sender.join()
        for _ in range(3):
            await asyncio.sleep(0)
        return seen, wakeups

    seen, wakeups = asyncio.run(main())
    assert seen == list(range(100))  # all of them, in order
    assert wakeups == 1  # the loop was busy elsewhere: one hop took them all

"""Where outrider's time goes under a saturating load: py-spy samples, summed by own and cumulative time.

py-spy attaches to the running process (ptrace), records `--format raw` (collapsed stacks, one
`frame;frame;... COUNT` line each) while wrk saturates it, and the stacks are reduced to the top functions.
Usage: prof = await profile(pid, url, body_file, 8.0, Path("bench-out")); print(render_profile(prof))
"""

from __future__ import annotations

import asyncio
import re
import shutil
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from loadtests.bench_load import SATURATING, run_tool

TOP = 15
RATE_HZ = 200
FRAME_FILE = re.compile(r"\(([^()]*):\d+\)$")
"""py-spy's frame: `function (file:line)`."""
OWNERS = {"proxy": "outrider", "experiments": "outrider"}


@dataclass(frozen=True, slots=True)
class Profile:
    """Shares of outrider's sampled time, or the reason there is no profile.

    The main thread runs the event loop, so its stacks are the request path: `own`, `cumulative` and
    `components` are shares of its non-idle samples. Frames common to all of its stacks (`<module>` down to
    `Runner.run`) are the `trunk`, left out of the cumulative ranking. `busy` is the share of sampling ticks
    in which the main thread was not idle; `other_threads` gives, per leaf frame, the share of ticks in which
    another thread (SQLite writes via `asyncio.to_thread`) was busy there.
    """

    command: str
    ticks: int = 0
    samples: int = 0
    busy: float = 0.0
    own: list[tuple[str, float]] = field(default_factory=list)
    cumulative: list[tuple[str, float]] = field(default_factory=list)
    components: list[tuple[str, float]] = field(default_factory=list)
    trunk: list[str] = field(default_factory=list)
    other_threads: list[tuple[str, float]] = field(default_factory=list)
    error: str | None = None


def py_spy() -> str:
    """The py-spy next to this interpreter (the bench extra installs it there), else the one on PATH."""
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy") or "py-spy"


def read_raw(text: str) -> list[tuple[list[str], int]]:
    """py-spy's raw format: `root;...;leaf COUNT` per line → (frames, count)."""
    stacks: list[tuple[list[str], int]] = []
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks.append((stack.split(";"), int(count)))
    return stacks


def common_prefix(stacks: list[list[str]]) -> list[str]:
    """The frames every stack starts with."""
    prefix = stacks[0] if stacks else []
    for frames in stacks[1:]:
        n = 0
        while n < min(len(prefix), len(frames)) and prefix[n] == frames[n]:
            n += 1
        prefix = prefix[:n]
    return prefix


def owner(frames: list[str]) -> str:
    """Whose code a sample is spent for: the innermost frame outside the standard library decides.

    Standard-library frames (asyncio, uuid, ...) and generated code (`<string>`: dataclass `__init__`) count
    for their caller; a leaf `Runner.run` is time in uvloop's C code (polling, socket I/O, callbacks).
    """
    if frames[-1].startswith("Runner.run ("):
        return "uvloop (C)"
    for frame in reversed(frames):
        match = FRAME_FILE.search(frame)
        top = match.group(1).split("/")[0].removesuffix(".py") if match else "<unknown>"
        if not top.startswith("<") and top not in sys.stdlib_module_names:
            return OWNERS.get(top, top)
    return "standard library"


def summarize_raw(text: str, command: str, ticks: int, top: int = TOP) -> Profile:
    """Own time: samples with the function as the leaf; cumulative: with it anywhere below the trunk."""
    stacks = read_raw(text)
    main = [(f, n) for f, n in stacks if f[0].startswith("<module>")]
    total = sum(n for _, n in main)
    if total == 0:
        return Profile(command, ticks, error="py-spy recorded no samples of the main thread")
    trunk = common_prefix([f for f, _ in main])
    own: Counter[str] = Counter()
    cumulative: Counter[str] = Counter()
    components: Counter[str] = Counter()
    for frames, count in main:
        own[frames[-1]] += count
        components[owner(frames)] += count
        for frame in set(frames[len(trunk) :]):
            cumulative[frame] += count
    others: Counter[str] = Counter()
    for frames, count in stacks:
        if not frames[0].startswith("<module>"):
            others[frames[-1]] += count
    ticks = max(ticks, total)
    return Profile(
        command,
        ticks,
        total,
        total / ticks,
        [(name, n / total) for name, n in own.most_common(top)],
        [(name, n / total) for name, n in cumulative.most_common(top)],
        [(name, n / total) for name, n in components.most_common()],
        trunk,
        [(name, n / ticks) for name, n in others.most_common(3)],
    )


async def profile(pid: int, url: str, body: Path, seconds: float, out: Path) -> Profile:
    """Record process `pid` for `seconds` while wrk saturates `url`; the raw stacks are kept in `out`."""
    raw = out / "profile-outrider.txt"
    options = f"--duration {seconds:.0f} --rate {RATE_HZ} --format raw --function"
    command = f"py-spy record --pid OUTRIDER {options}"
    cmd = [py_spy(), "record", "--pid", str(pid), *options.split(), "--output", str(raw)]
    spy = await asyncio.create_subprocess_exec(
        *cmd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    await asyncio.sleep(0.5)  # attached before the load starts, so no sample misses it
    load = run_tool(SATURATING.argv(url, body, seconds + 1), seconds + 1)
    try:
        await load
        log, _ = await asyncio.wait_for(spy.communicate(), 30)
    finally:
        if spy.returncode is None:
            spy.kill()
            await spy.wait()
    if spy.returncode != 0 or not raw.exists():
        error = f"py-spy could not record (exit {spy.returncode}): {log.decode()[-500:]}"
        return Profile(command, error=error)
    return summarize_raw(raw.read_text(), command, round(seconds * RATE_HZ))


def render_profile(prof: Profile) -> str:
    """The rankings, the components and the other threads, for the terminal."""
    if prof.error is not None:
        return f"  no profile: {prof.error}"

    def ranked(title: str, rows: list[tuple[str, float]]) -> list[str]:
        return [f"  {title}:", *[f"    {share:6.1%}  {name}" for name, share in rows]]

    head = f"  {prof.samples} main-thread samples at {RATE_HZ} Hz, busy {prof.busy:.0%} of ticks"
    return "\n".join(
        [
            f"{head} ({prof.command})",
            *ranked("own time (leaf frames)", prof.own),
            *ranked("cumulative time (anywhere on the stack below the event loop)", prof.cumulative),
            *ranked("by component (innermost non-stdlib frame)", prof.components),
            *ranked("other threads (share of ticks busy, by leaf frame)", prof.other_threads),
        ]
    )

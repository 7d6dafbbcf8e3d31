"""What the daemons sharing one PostgreSQL store coordinate through: job leases, rate buckets.

Times that decide are the server's (`clock_timestamp()`), so that the daemons' clocks need not
agree: a lease runs out, and a bucket's tokens come due, by the server's clock alone.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from dispatcher.domain.clock import sortable_utc
from dispatcher.store.postgres.host import Host

# A lease is taken when the job is free, or renewed by its holder; never for a run already taken.
_CLAIM = (
    "INSERT INTO job_leases AS j (name, owner, due, until) "
    "VALUES ($1, $2, $3, clock_timestamp() + make_interval(secs => $4)) "
    "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, due = excluded.due, "
    "until = excluded.until "
    "WHERE (j.owner = excluded.owner AND j.due <= excluded.due) "
    "OR (j.due < excluded.due AND j.until <= clock_timestamp()) "
    "RETURNING 1")

# A token bucket as GCRA keeps it: `tat`, when the next token would be due at the full rate. A
# token is due at the later of now and `tat` less the burst's tolerance, and moves `tat` one
# interval on from the later of `tat` and now. "Now" is read once, before the row is locked (a
# taker that waited for the row finds `tat` past it anyway); the wait is counted from when the
# answer is made, after any such wait, so no request leaves before its token is due. Tokens are
# handed out in the order the takers reach the row: none is passed over.
_TAKE = (
    "INSERT INTO rate_buckets AS b (key, tat) "
    "VALUES ($1, clock_timestamp() + make_interval(secs => $2)) "
    "ON CONFLICT (key) DO UPDATE SET tat = GREATEST(b.tat, excluded.tat "
    "- make_interval(secs => $2)) + make_interval(secs => $2) "
    "RETURNING GREATEST(0, EXTRACT(EPOCH FROM tat - clock_timestamp())::float8 - $2 - $3)")


class FleetRows:
    """Mixin of PostgresStore: job leases and provider rate buckets, shared by the fleet."""

    async def claim_job(self: Host, name: str, due: datetime, hold: timedelta) -> bool:
        """Whether this store may run job `name`'s run due at `due`, holding the job for `hold`
        (by the server's clock): when it holds the job already, for a run due no earlier; or
        when no other store holds it and no run due at or after `due` was claimed."""
        async with self._acquire() as conn:
            taken = await conn.fetchval(_CLAIM, name, self._owner, sortable_utc(due),
                                        hold.total_seconds())
        return taken is not None

    async def release_jobs(self: Host) -> None:
        """Give up every job this store holds (a clean stop): another daemon takes each at its
        next run, instead of when the hold runs out."""
        async with self._acquire() as conn:
            await conn.execute("UPDATE job_leases SET until = clock_timestamp() "
                               "WHERE owner = $1 AND until > clock_timestamp()", self._owner)

    async def take_token(self: Host, key: str, rate: float, burst: int) -> float:
        """Take the next token of the bucket `key`, in one statement: the seconds until it is
        due. By the server's clock, tokens never come due faster than `rate` a second after the
        first `burst`: over any T seconds, at most `burst` + `rate` x T of them."""
        interval = 1.0 / rate
        async with self._acquire() as conn:
            wait = await conn.fetchval(_TAKE, key, interval, (burst - 1) * interval)
        return float(wait)

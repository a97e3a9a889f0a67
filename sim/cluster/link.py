"""A link or NIC as a SimPy resource that concurrent transfers share fairly (processor sharing).

Each active flow gets bandwidth / n_active; when a flow starts or ends the remaining bytes of the
others are advanced and the next completion is rescheduled. An all-to-all and a pipeline send
that cross the same NIC therefore slow each other down, as on a real cluster.
"""

from __future__ import annotations

import simpy


class SharedLink:
    def __init__(self, env: simpy.Environment, bandwidth_Bps: float, name: str = "link"):
        self.env = env
        self.bw = bandwidth_Bps
        self.name = name
        self._flows: dict[int, list] = {}      # id -> [remaining_bytes, done_event]
        self._next_id = 0
        self._last = 0.0
        self._gen = 0
        self.busy_s = 0.0

    def transfer(self, nbytes: float) -> simpy.Event:
        """An event that fires when ``nbytes`` have crossed the link."""
        done = self.env.event()
        if nbytes <= 0:
            done.succeed()
            return done
        self._advance()
        self._flows[self._next_id] = [float(nbytes), done]
        self._next_id += 1
        self._reschedule()
        return done

    def _advance(self) -> None:
        now = self.env.now
        dt = now - self._last
        n = len(self._flows)
        if n and dt > 0:
            per = dt * self.bw / n
            for f in self._flows.values():
                f[0] -= per
            self.busy_s += dt
        self._last = now

    def _reschedule(self) -> None:
        self._gen += 1
        if not self._flows:
            return
        n = len(self._flows)
        rem = min(f[0] for f in self._flows.values())
        delay = max(rem, 0.0) * n / self.bw
        gen = self._gen
        ev = self.env.timeout(delay)
        ev.callbacks.append(lambda _e, g=gen: self._on_timer(g))

    def _on_timer(self, gen: int) -> None:
        if gen != self._gen:
            return                              # superseded by a later arrival/departure
        self._advance()
        # a flow within 1 ns of done is done (float residue must not spin the clock in place)
        eps = 1e-9 * self.bw / max(len(self._flows), 1)
        finished = [k for k, f in self._flows.items() if f[0] <= eps]
        for k in finished:
            self._flows.pop(k)[1].succeed()
        self._reschedule()

"""Collective costs per tier: the single communication cost model.

A collective over a process group is described by how many of its ranks share a node
(``local``) and how many nodes it spans (``nodes``). Its cost is per-device bytes on the
intra-node fabric and on the NIC, plus a latency term; both executors turn these into time
(the DES by pushing the bytes through shared links, the analytic estimate directly).
Ring algorithms follow the NCCL bus-bandwidth accounting (nccl-tests doc/PERFORMANCE.md):
all-reduce moves 2(g-1)/g of the buffer per rank, all-gather and reduce-scatter (g-1)/g.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.config.hardware import HardwareProfile


@dataclass(frozen=True)
class Group:
    """A process group: ``size`` ranks at device-index ``stride``."""

    size: int
    stride: int
    devices_per_node: int

    @property
    def local(self) -> int:
        """Ranks of the group inside one node."""
        if self.stride >= self.devices_per_node:
            return 1
        return max(1, min(self.size, self.devices_per_node // self.stride))

    @property
    def nodes(self) -> int:
        return -(-self.size // self.local)


@dataclass(frozen=True)
class CommCost:
    """Per-device traffic of one collective call (bytes already divided by efficiency)."""

    intra_bytes: float = 0.0      # effective bytes over the device's scale-up bandwidth
    inter_bytes: float = 0.0      # effective bytes over the device's NIC
    latency_s: float = 0.0

    def __add__(self, o: CommCost) -> CommCost:
        return CommCost(self.intra_bytes + o.intra_bytes, self.inter_bytes + o.inter_bytes,
                        self.latency_s + o.latency_s)

    def scaled(self, k: float) -> CommCost:
        return CommCost(self.intra_bytes * k, self.inter_bytes * k, self.latency_s * k)


ZERO = CommCost()


class CommModel:
    """Bandwidths and latencies of a profile, and collective costs built from them."""

    def __init__(self, hw: HardwareProfile):
        n, so, ce = hw.node, hw.scale_out, hw.collective_efficiency
        self.hw = hw
        self.dpn = n.devices_per_node
        self.intra_bw = n.intra_node_bandwidth_GBps * 1e9          # bytes/s per device, one direction
        self.nic_bw = so.nic_bandwidth_GBps * 1e9 / so.oversubscription
        self.intra_lat = n.intra_node_latency_us * 1e-6
        self.inter_lat = so.latency_us * 1e-6
        self.full_mesh = n.topology == "full_mesh"
        self.ce = ce
        curve = np.asarray(ce.intra_node_by_size or [], dtype=float)     # (points, 2): bytes, fraction
        self._by_size = (np.log(curve[:, 0]), curve[:, 1]) if len(curve) else None
        self._by_size_max = float(curve[:, 1].max()) if len(curve) else 0.0

    def group(self, size: int, stride: int) -> Group:
        return Group(size, stride, self.dpn)

    def time(self, c: CommCost) -> float:
        """Uncontended time of a collective: its slower tier plus latency."""
        return c.latency_s + max(c.intra_bytes / self.intra_bw, c.inter_bytes / self.nic_bw)

    def _intra_peer_share(self, peers: int) -> float:
        """Fraction of a device's scale-up bandwidth usable toward ``peers`` peers at once.

        Full mesh: one dedicated link per peer pair, so talking to p of the node's n-1 peers uses
        p/(n-1) of the bandwidth. Switch: any peer set gets the full bandwidth.
        """
        if not self.full_mesh or self.dpn <= 1:
            return 1.0
        return min(1.0, peers / (self.dpn - 1))

    def _ring(self, g: Group, nbytes: float, factor: float) -> CommCost:
        """Flat ring over the group; factor = 2 for all-reduce, 1 for all-gather/reduce-scatter."""
        if g.size <= 1 or nbytes <= 0:
            return ZERO
        vol = factor * (g.size - 1) / g.size * nbytes
        steps = factor * (g.size - 1)
        if g.nodes == 1:
            # switch: a ring gets the device's full bandwidth. Full mesh: HCCL-style mesh algorithms
            # send to all g-1 peers at once over their dedicated links (a ring would use one link)
            share = self._intra_peer_share(g.size - 1)
            if self._by_size is not None:
                # measured end to end at this size: the bytes occupy the link at the curve's best rate,
                # the rest of the measured time is latency (pipeline fill, protocol), which holds no link
                eff = float(np.interp(np.log(nbytes), *self._by_size))
                best = self._by_size_max
                return CommCost(intra_bytes=vol / (best * share),
                                latency_s=vol / (self.intra_bw * share) * (1.0 / eff - 1.0 / best))
            return CommCost(intra_bytes=vol / (self.ce.intra_node * share), latency_s=steps * self.intra_lat)
        return CommCost(inter_bytes=vol / self.ce.inter_node, latency_s=steps * self.inter_lat)

    def all_reduce(self, g: Group, nbytes: float, algo: str = "hierarchical") -> CommCost:
        if algo == "ring" or g.nodes == 1 or g.local == 1:
            return self._ring(g, nbytes, 2.0)
        # reduce-scatter in the node, all-reduce of 1/local across nodes, all-gather in the node
        inner = self.group(g.local, 1)
        outer = Group(g.nodes, self.dpn, self.dpn)
        return (self._ring(inner, nbytes, 1.0) + self._ring(outer, nbytes / g.local, 2.0)
                + self._ring(inner, nbytes, 1.0))

    def reduce_scatter(self, g: Group, nbytes: float) -> CommCost:
        """nbytes: the full (unsharded) buffer on each rank."""
        if g.nodes == 1 or g.local == 1:
            return self._ring(g, nbytes, 1.0)
        inner = self.group(g.local, 1)
        outer = Group(g.nodes, self.dpn, self.dpn)
        return self._ring(inner, nbytes, 1.0) + self._ring(outer, nbytes / g.local, 1.0)

    def all_gather(self, g: Group, nbytes: float) -> CommCost:
        """nbytes: the full (gathered) buffer on each rank."""
        return self.reduce_scatter(g, nbytes)

    def p2p(self, nbytes: float, inter_node: bool) -> CommCost:
        if nbytes <= 0:
            return ZERO
        if inter_node:
            return CommCost(inter_bytes=nbytes / self.ce.inter_node, latency_s=self.inter_lat)
        share = self._intra_peer_share(1)
        return CommCost(intra_bytes=nbytes / (self.ce.intra_node * share), latency_s=self.intra_lat)

    def all_to_all(self, send_intra: float, send_inter: float, peers_intra: int, peers_inter: int) -> CommCost:
        """One rank's side of an all-to-all: bytes it sends inside its node and across nodes.

        The caller passes the busiest rank's bytes (max of sent and received), so the hottest
        rank sets the time, as on a real cluster.
        """
        share = self._intra_peer_share(max(peers_intra, 1))
        lat = (self.intra_lat if peers_intra else 0.0) + (self.inter_lat if peers_inter else 0.0)
        return CommCost(intra_bytes=send_intra / (self.ce.all_to_all_intra * share),
                        inter_bytes=send_inter / self.ce.all_to_all_inter, latency_s=lat)

"""Discrete-event simulator of one vLLM V1-style replica with speculative decoding.

One call to :meth:`Engine.step` is one engine step, as vLLM's scheduler runs it:

1. requests that arrived join the waiting queue;
2. running requests that finished prefill get ``1 + k`` query tokens each (k drafts to verify; an n-gram
   miss schedules no draft); running requests still prefilling get a chunk of the remaining
   ``max_num_batched_tokens`` budget (chunked prefill); waiting requests are admitted while
   ``max_num_seqs`` slots, budget and KV cache allow;
3. when the KV cache (``kv_capacity_tokens``) cannot hold the decode tokens, the newest running request is
   preempted (its KV freed; it is recomputed later, vLLM V1's recompute preemption);
4. the step takes draft time + target forward + scheduler overhead (:mod:`specwise.perf.steptime`);
5. each verifying sequence accepts a prefix of its drafts, drawn from its own per-position conditional
   acceptance (class alphas with a per-request log-odds shift), and emits accepted + 1 tokens in one chunk.

State lives in numpy arrays indexed by request, and per-step work is vectorised over the batch, so one
simulated hour of a busy 70B server runs in seconds (``benchmarks/simulator_speed.py``).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

import numpy as np
from pydantic import Field

from specwise.perf.steptime import DraftCost, StepTimeModel
from specwise.schemas.acceptance import AcceptanceClass
from specwise.schemas.base import SpecwiseModel
from specwise.simulate.policy import SpecPolicy

PENDING, WAITING, RUNNING, DONE, ABORTED = 0, 1, 2, 3, 4
_EMPTY = np.empty(0, dtype=np.int64)


class EngineConfig(SpecwiseModel):
    """Scheduler limits of the simulated replica (vLLM names)."""

    max_num_seqs: int = Field(256, ge=1)
    max_num_batched_tokens: int = Field(8192, ge=1)
    kv_capacity_tokens: int = Field(ge=1, description="KV-cache capacity in tokens (num_gpu_blocks x block_size)")
    drain_limit_s: float = Field(
        900.0, gt=0, description="stop this long after the last arrival; unfinished requests count as failed"
    )


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


class Engine:
    """The simulated replica. Add requests, then call :meth:`step` (or :meth:`run`)."""

    def __init__(
        self,
        target: StepTimeModel,
        draft: DraftCost,
        policy: SpecPolicy,
        config: EngineConfig,
        acceptance_classes: Sequence[AcceptanceClass] = (),
        seed: int = 0,
        record_chunks: bool = False,
        fast_forward: bool = True,
    ) -> None:
        self.target = target
        self.draft = draft
        self.policy = policy
        self.config = config
        self.classes: list[AcceptanceClass] = list(acceptance_classes)
        self.kmax = policy.max_k
        if self.kmax > 0 and not self.classes:
            raise ValueError("speculation needs at least one acceptance class")
        self.rng = np.random.default_rng(seed)
        self.record_chunks = record_chunks
        # batch runs may advance several identical decode-only steps at once (see _fast_forward);
        # serve-sim needs every step to deliver tokens in real time and turns this off
        self.fast_forward = fast_forward and not record_chunks
        self.now = 0.0
        self.n = 0
        self._alloc(1024)
        self.waiting: deque[int] = deque()
        self.run_list: list[int] = []
        self._run_arr: np.ndarray | None = None  # cached np.array(run_list); None after any change
        self.prefilling: set[int] = set()  # running requests whose prefill is not complete
        self.failed: list[int] = []  # requests that can never fit the KV cache (consumers may drain this)
        self.next_arrival = 0
        self.kv_used = 0
        self.closed_loop: int | None = None
        self.closed_next = 0
        # aggregates
        # tokens of the previous step only matter to a draft model's first pass
        self._track_last_tokens = draft.method == "draft_model" and self.kmax > 0
        self._has_mixture = False
        self.steps = 0
        self.busy_time = 0.0
        self.batch_time = 0.0
        self.k_steps: dict[int, int] = {}
        self.num_preemptions = 0
        self.spec_drafts = 0
        self.spec_draft_tokens = 0
        self.spec_accepted = 0
        self.spec_accepted_per_pos = np.zeros(max(self.kmax, 1), dtype=np.int64)
        self.prompt_tokens_total = 0
        self.generation_tokens_total = 0
        self._gap = np.empty(1 << 16)
        self._gap_tok = np.empty(1 << 16)
        self._ngap = 0
        # outputs of the last step (for serve-sim)
        self.last_emit_ids = np.empty(0, dtype=np.int64)
        self.last_emit_tokens = np.empty(0, dtype=np.int64)
        self.last_emit_accepted = np.empty(0, dtype=np.int64)
        self.last_emit_drafted = np.empty(0, dtype=bool)
        self.last_finished: list[int] = []
        self.last_k = 0
        self.last_dt = 0.0
        self.last_n_tokens = 0
        self.chunk_t: list[list[float]] = []
        self.chunk_n: list[list[int]] = []
        self.step_acc: list[list[int]] = []

    # ---- request store ----------------------------------------------------------------------------
    def _alloc(self, cap: int) -> None:
        k1 = max(self.kmax, 1)

        def grow(name: str, dtype, fill, shape=None) -> None:
            new = np.full((cap,) if shape is None else (cap, shape), fill, dtype=dtype)
            old = getattr(self, name, None)
            if old is not None:
                new[: old.shape[0]] = old
            setattr(self, name, new)

        for name in ("arrival", "first_t", "finish_t", "last_emit_t"):
            grow(name, float, np.nan)
        for name in ("prompt", "out_len", "cls", "computed", "generated", "prefill_target", "status", "drafts",
                     "draft_tokens", "accepted", "chunks", "last_tokens"):
            grow(name, np.int64, 0)
        grow("alpha", float, 0.0, k1)
        grow("match_p", float, 1.0)
        grow("hist", np.int64, 0, self.kmax + 1)
        self.cap = cap

    def class_index(self, acceptance: AcceptanceClass) -> int:
        """Index of an acceptance class, registering it if new (serve-sim picks them per request)."""
        for i, c in enumerate(self.classes):
            if c is acceptance or c == acceptance:
                return i
        self.classes.append(acceptance)
        return len(self.classes) - 1

    def add_requests(self, arrival: np.ndarray, prompt: np.ndarray, output: np.ndarray,
                     class_index: np.ndarray | None = None, closed_loop_concurrency: int | None = None) -> np.ndarray:
        """Add requests (arrival times nondecreasing; inf = closed loop, set when a slot frees). Returns ids."""
        m = len(arrival)
        if self.n + m > self.cap:
            self._alloc(max(self.cap * 2, self.n + m))
        ids = np.arange(self.n, self.n + m)
        self.arrival[ids] = arrival
        self.prompt[ids] = np.maximum(prompt, 1)
        self.out_len[ids] = np.maximum(output, 1)
        self.prefill_target[ids] = self.prompt[ids]
        ci = np.zeros(m, dtype=np.int64) if class_index is None else np.asarray(class_index, dtype=np.int64)
        self.cls[ids] = ci
        if self.kmax > 0:
            rows, match, sigma = self._class_rows()
            z = self.rng.standard_normal(m)
            base = rows[ci]
            het = sigma[ci]
            self.alpha[ids] = np.where(het[:, None] > 0, 1 / (1 + np.exp(-(_logit(base) + (het * z)[:, None]))),
                                       base)
            self.match_p[ids] = match[ci]
            self._has_mixture = self._has_mixture or bool(np.any(match[ci] < 1.0))
        if closed_loop_concurrency is not None:
            self.closed_loop = closed_loop_concurrency
            self.closed_next = self.n + min(m, closed_loop_concurrency)
        if self.record_chunks:
            for _ in range(m):
                self.chunk_t.append([])
                self.chunk_n.append([])
                self.step_acc.append([])
        self.n += m
        return ids

    def _class_rows(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rows = np.zeros((len(self.classes), max(self.kmax, 1)))
        for i, c in enumerate(self.classes):
            a = list(c.conditional)
            while len(a) < self.kmax:
                a.append(a[-1])  # positions beyond the profile repeat its last alpha (schemas/acceptance.py)
            rows[i] = a[: max(self.kmax, 1)]
        match = np.array([c.match_probability for c in self.classes])
        sigma = np.array([c.heterogeneity for c in self.classes])
        return rows, match, sigma

    def abort(self, rid: int) -> None:
        """Drop a request (client disconnect): frees its slot and KV."""
        st = self.status[rid]
        if st == RUNNING:
            self.run_list.remove(rid)
            self._run_arr = None
            self.prefilling.discard(rid)
            self.kv_used -= int(self.computed[rid])
        elif st == WAITING:
            try:
                self.waiting.remove(rid)
            except ValueError:
                pass
        if st in (PENDING, WAITING, RUNNING):
            self.status[rid] = ABORTED
            self._release_closed_slots(1, self.now)

    # ---- scheduling -------------------------------------------------------------------------------
    @property
    def idle(self) -> bool:
        return not self.run_list and not self.waiting

    def _admit_arrivals(self) -> None:
        if self.next_arrival >= self.n or self.arrival[self.next_arrival] > self.now:
            return
        end = int(np.searchsorted(self.arrival[self.next_arrival:self.n], self.now, side="right")) + self.next_arrival
        for rid in range(self.next_arrival, end):
            if self.status[rid] == PENDING:
                self.status[rid] = WAITING
                self.waiting.append(rid)
        self.next_arrival = end

    def next_arrival_time(self) -> float | None:
        if self.next_arrival < self.n and math.isfinite(self.arrival[self.next_arrival]):
            return float(self.arrival[self.next_arrival])
        return None

    def _release_closed_slots(self, count: int, t: float) -> None:
        """Closed loop: each finished (or failed) request lets its client send the next one at ``t``."""
        if self.closed_loop is None:
            return
        for _ in range(count):
            if self.closed_next < self.n:
                self.arrival[self.closed_next] = t
                self.closed_next += 1

    def _preempt_newest(self) -> None:
        victim = self.run_list.pop()
        self._run_arr = None
        self.prefilling.discard(victim)
        self.kv_used -= int(self.computed[victim])
        self.computed[victim] = 0
        self.prefill_target[victim] = self.prompt[victim] + self.generated[victim]
        self.status[victim] = WAITING
        self.waiting.appendleft(victim)
        self.num_preemptions += 1

    def _choose_oracle_k(self, dec: np.ndarray, n_prefill: int, kv_read: float, kv_dec: float) -> int:
        ks = np.arange(self.kmax + 1)
        if dec.size == 0 or self.kmax == 0:
            return 0
        surv = np.cumprod(self.alpha[dec, : self.kmax], axis=1) * self.match_p[dec][:, None]
        exp_acc = np.concatenate([[0.0], np.cumsum(surv.sum(axis=0))])
        n_dec = dec.size
        n_tok = n_dec * (ks + 1) + n_prefill
        fwd = np.asarray(self.target.forward_time(n_tok, kv_read))
        extra = n_prefill + float(np.maximum(self.last_tokens[dec] - 1, 0).sum())
        dr = np.asarray(self.draft.time(n_dec, kv_dec, ks, extra_tokens=extra, target_forward_s=fwd))
        rate = (n_dec + exp_acc) / (fwd + self.target.sched_time(n_dec) + dr)
        return int(np.argmax(rate))

    def _fast_forward(self) -> float | None:
        """Advance a block of plain decode steps (no drafts, prefills, waiting requests) in one go.

        Such steps are identical except that every sequence's context grows by one token, so the step
        time is affine in the step index (the KV term). The block ends at the first step that finishes a
        request, before the first step that starts after the next arrival, or when the KV cache would
        overflow, so the result equals stepping one by one. Returns the block's duration or None.
        """
        if self.waiting or self.prefilling or not self.run_list:
            return None
        run = self._run_arr if self._run_arr is not None else np.array(self.run_list, dtype=np.int64)
        self._run_arr = run
        b = run.size
        if b > self.config.max_num_batched_tokens or self.policy.kind == "oracle" or self.policy.k_for(b, 0) != 0:
            return None
        remaining = self.out_len[run] - self.generated[run]
        m = int(remaining.min())
        m = min(m, (self.config.kv_capacity_tokens - self.kv_used) // b)
        if m < 2:
            return None
        first = self.step_time_decode(b, self.kv_used + b)
        slope = self.target.kv_read_s_per_token * b
        dts = first + slope * np.arange(m)
        starts = self.now + np.concatenate([[0.0], np.cumsum(dts[:-1])])
        t_next = self.next_arrival_time()
        if t_next is not None:
            m = min(m, int(np.searchsorted(starts, t_next, side="left")))
            if m < 2:
                return None
            dts = dts[:m]
        ends = self.now + np.cumsum(dts)
        t_end = float(ends[-1])
        first_gaps = ends[0] - self.last_emit_t[run]
        n_gaps = b * m
        if self._ngap + n_gaps > self._gap.size:
            size = max(self._gap.size * 2, self._ngap + n_gaps)
            self._gap = np.resize(self._gap, size)
            self._gap_tok = np.resize(self._gap_tok, size)
        g = self._gap[self._ngap:self._ngap + n_gaps]
        g[:b] = first_gaps
        g[b:] = np.repeat(dts[1:], b)
        self._gap_tok[self._ngap:self._ngap + n_gaps] = 1.0
        self._ngap += n_gaps
        self.generated[run] += m
        self.computed[run] += m
        self.kv_used += m * b
        self.generation_tokens_total += m * b
        self.last_emit_t[run] = t_end
        if self.kmax > 0:
            self.chunks[run] += m
        if self._track_last_tokens:
            self.last_tokens[run] = 1
        finished = run[self.generated[run] >= self.out_len[run]]
        busy = float(dts.sum())
        self.steps += m
        self.busy_time += busy
        self.batch_time += busy * b
        self.k_steps[0] = self.k_steps.get(0, 0) + m
        self.now = t_end
        self.last_emit_ids = run
        self.last_emit_tokens = np.full(b, m, dtype=np.int64)
        self.last_emit_accepted = np.zeros(b, dtype=np.int64)
        self.last_emit_drafted = np.zeros(b, dtype=bool)
        self.last_k = 0
        self.last_dt = busy
        self.last_n_tokens = b
        self._retire(finished, t_end)
        return busy

    def _retire(self, finished: np.ndarray, t_end: float) -> None:
        """Mark the requests that finished in this step done and free their KV and run slots."""
        fin = finished.tolist()
        self.last_finished = fin
        if fin:
            self.finish_t[finished] = t_end
            self.status[finished] = DONE
            self.kv_used -= int(self.computed[finished].sum())
            done = set(fin)
            self.run_list = [r for r in self.run_list if r not in done]
            self._run_arr = None
            self._release_closed_slots(len(fin), t_end)

    def step_time_decode(self, batch: int, kv_read: float) -> float:
        """Step time of a plain decode step (no drafts): forward + scheduler overhead."""
        return self.target.forward_time_scalar(batch, kv_read) + self.target.sched_time(batch)

    def step(self) -> float | None:
        """Run one engine step; returns its duration (s), or None when nothing is left to do."""
        cfg = self.config
        self._admit_arrivals()
        if self.fast_forward:
            dt = self._fast_forward()
            if dt is not None:
                return dt
        if self.idle:
            t = self.next_arrival_time()
            if t is None:
                return None
            self.now = max(self.now, t)
            self._admit_arrivals()
        budget = cfg.max_num_batched_tokens
        cap_kv = cfg.kv_capacity_tokens
        while True:
            if self._run_arr is None:
                self._run_arr = np.array(self.run_list, dtype=np.int64)
            run = self._run_arr
            if self.prefilling:
                left = self.prefill_target[run] - self.computed[run]
                dec_mask = left <= 0
                dec = run[dec_mask]
                pre = run[~dec_mask]
                pre_left = left[~dec_mask]
            else:
                dec = run
                pre = pre_left = _EMPTY
            n_dec = dec.size
            if self.policy.kind == "oracle":
                n_pre_est = min(int(pre_left.sum()), max(0, budget - n_dec * (self.kmax + 1)))
                kv_dec = float(self.kv_used - (self.computed[pre].sum() if pre.size else 0))
                k = self._choose_oracle_k(dec, n_pre_est, float(self.kv_used), kv_dec)
            else:
                k = self.policy.k_for(len(self.run_list), len(self.waiting))
            if n_dec and k:
                k = min(k, max(0, budget // n_dec - 1))
            if k > 0 and n_dec:
                mp = self.match_p[dec]
                if self._has_mixture:
                    match = self.rng.random(n_dec) < mp
                    n_match = int(np.count_nonzero(match))
                else:
                    match = np.ones(n_dec, dtype=bool)
                    n_match = n_dec
            else:
                match = np.zeros(n_dec, dtype=bool)
                n_match = 0
            dec_tokens = n_dec + k * n_match
            if self.kv_used + dec_tokens > cap_kv and len(self.run_list) > 1:
                self._preempt_newest()
                continue
            break
        # chunked prefill of running requests, then admissions
        allowed = max(0, min(budget - dec_tokens, cap_kv - self.kv_used - dec_tokens))
        if pre.size:
            before = np.cumsum(pre_left) - pre_left
            chunks = np.clip(allowed - before, 0, pre_left)
            allowed -= int(chunks.sum())
        else:
            chunks = _EMPTY
        new_ids: list[int] = []
        new_chunks: list[int] = []
        while self.waiting and len(self.run_list) < cfg.max_num_seqs and allowed > 0:
            rid = self.waiting[0]
            need = int(self.prefill_target[rid] + self.out_len[rid] - self.generated[rid])
            if need > cap_kv:  # can never fit: fail it rather than thrash
                self.waiting.popleft()
                self.status[rid] = ABORTED
                self.finish_t[rid] = np.inf
                self.failed.append(rid)
                self._release_closed_slots(1, self.now)
                continue
            self.waiting.popleft()
            self.status[rid] = RUNNING
            self.run_list.append(rid)
            self._run_arr = None
            self.prefilling.add(rid)
            c = min(int(self.prefill_target[rid] - self.computed[rid]), allowed)
            new_ids.append(rid)
            new_chunks.append(c)
            allowed -= c
        if new_ids:
            pre = np.concatenate([pre, np.asarray(new_ids, dtype=np.int64)])
            chunks = np.concatenate([chunks, np.asarray(new_chunks, dtype=np.int64)])
        n_prefill = int(chunks.sum())
        n_tokens = dec_tokens + n_prefill
        if n_tokens == 0:
            if self.run_list:
                # prefills stuck on a full KV cache: free space (preempt) or fail the lone request
                if len(self.run_list) > 1:
                    self._preempt_newest()
                else:
                    rid = self.run_list.pop()
                    self._run_arr = None
                    self.prefilling.discard(rid)
                    self.kv_used -= int(self.computed[rid])
                    self.status[rid] = ABORTED
                    self.finish_t[rid] = np.inf
                    self.failed.append(rid)
                    self._release_closed_slots(1, self.now)
                return 0.0
            t = self.next_arrival_time()
            if t is None:
                return None
            self.now = max(self.now, t)
            return 0.0
        # kv_used is the sum of `computed` over running requests (new admissions have computed 0)
        kv_pre = float(self.computed[pre].sum()) if pre.size else 0.0
        kv_dec = float(self.kv_used) - kv_pre
        kv_read = float(self.kv_used) + n_tokens
        fwd = self.target.forward_time_scalar(n_tokens, kv_read)
        n_drafting = n_match if self.draft.method == "ngram" else n_dec
        draft_s = 0.0
        if k > 0 and n_drafting:
            extra = n_prefill
            if self._track_last_tokens:
                extra += int(self.last_tokens[dec].sum()) - n_dec
            draft_s = self.draft.time_scalar(n_drafting, kv_dec, k, extra_tokens=extra, target_forward_s=fwd)
        dt = fwd + self.target.sched_time(n_dec + int(pre.size)) + draft_s
        t_end = self.now + dt

        # ---- outcomes ------------------------------------------------------------------------------
        if n_dec:
            if k > 0:
                u = self.rng.random((n_dec, k))
                acc = np.cumprod(u < self.alpha[dec, :k], axis=1).sum(axis=1) * match
            else:
                acc = np.zeros(n_dec, dtype=np.int64)
            if k > 0:
                tokens = np.minimum(acc + 1, self.out_len[dec] - self.generated[dec])
                n_dec_tokens = int(tokens.sum())
            else:
                tokens = np.ones(n_dec, dtype=np.int64)
                n_dec_tokens = n_dec
            if k > 0:
                drafted = dec[match]
                acc_d = acc[match]
                self.drafts[drafted] += 1
                self.draft_tokens[drafted] += k
                self.accepted[drafted] += acc_d
                self.hist[drafted, acc_d] += 1  # request ids are unique within a step
                counts = np.bincount(acc_d, minlength=k + 1)
                self.spec_accepted_per_pos[:k] += np.cumsum(counts[::-1])[::-1][1:]
                self.spec_drafts += int(drafted.size)
                self.spec_draft_tokens += int(drafted.size) * k
                self.spec_accepted += int(acc_d.sum())
            self.computed[dec] += tokens
            self.kv_used += n_dec_tokens
        else:
            acc = _EMPTY
            tokens = _EMPTY
            n_dec_tokens = 0
        if pre.size:
            self.computed[pre] += chunks
            self.kv_used += n_prefill
            done_pre = pre[self.computed[pre] >= self.prefill_target[pre]]
            self.prompt_tokens_total += n_prefill
            self.prefilling.difference_update(done_pre.tolist())
        else:
            done_pre = pre
        emit = np.concatenate([dec, done_pre]) if done_pre.size else dec
        emit_tok = np.concatenate([tokens, np.ones(done_pre.size, dtype=np.int64)]) if done_pre.size else tokens
        if emit.size:
            if done_pre.size:
                had = self.generated[emit] > 0
                self.first_t[emit[~had]] = t_end
                cont = emit[had]
                cont_tok = emit_tok[had]
            else:  # decoders got their first token when their prefill completed
                cont = emit
                cont_tok = emit_tok
            if cont.size:
                g = t_end - self.last_emit_t[cont]
                m = g.size
                if self._ngap + m > self._gap.size:
                    size = max(self._gap.size * 2, self._ngap + m)
                    self._gap = np.resize(self._gap, size)
                    self._gap_tok = np.resize(self._gap_tok, size)
                self._gap[self._ngap:self._ngap + m] = g
                self._gap_tok[self._ngap:self._ngap + m] = cont_tok
                self._ngap += m
            self.generated[emit] += emit_tok
            self.generation_tokens_total += n_dec_tokens + int(done_pre.size)
            self.last_emit_t[emit] = t_end
            if self.kmax > 0:  # without speculation every chunk is one token: chunks == generated
                self.chunks[emit] += 1
            if self._track_last_tokens:
                self.last_tokens[emit] = emit_tok
            finished = emit[self.generated[emit] >= self.out_len[emit]]
            if self.record_chunks:
                acc_full = np.concatenate([acc, np.zeros(done_pre.size, dtype=np.int64)]) if done_pre.size else acc
                drafted_flag = np.concatenate([match, np.zeros(done_pre.size, dtype=bool)]) if done_pre.size else match
                for rid, nt, a, d in zip(emit.tolist(), emit_tok.tolist(), acc_full.tolist(), drafted_flag.tolist()):
                    self.chunk_t[rid].append(t_end)
                    self.chunk_n[rid].append(nt)
                    if d and k > 0:
                        self.step_acc[rid].append(a)
        else:
            finished = emit
        self.last_emit_ids = emit
        self.last_emit_tokens = emit_tok
        self.last_emit_accepted = np.concatenate([acc, np.zeros(done_pre.size, dtype=np.int64)]) \
            if done_pre.size else acc
        # `match` is all False when nothing was drafted (k = 0)
        self.last_emit_drafted = np.concatenate([match, np.zeros(done_pre.size, dtype=bool)]) \
            if done_pre.size else match
        self.last_k = k
        self.last_dt = dt
        self.last_n_tokens = n_tokens
        self._retire(finished, t_end)
        self.steps += 1
        self.busy_time += dt
        self.batch_time += dt * run.size
        self.k_steps[k] = self.k_steps.get(k, 0) + 1
        self.now = t_end
        return dt

    def run(self, until_s: float | None = None) -> None:
        """Step until every request is done (or ``drain_limit_s`` after the last arrival / ``until_s``)."""
        finite = self.arrival[: self.n][np.isfinite(self.arrival[: self.n])]
        last_arrival = float(finite.max()) if finite.size else 0.0
        stop = last_arrival + self.config.drain_limit_s
        if until_s is not None:
            stop = min(stop, until_s)
        if self.closed_loop is not None:
            stop = until_s if until_s is not None else math.inf
        step = self.step
        while self.now <= stop:
            if step() is None:
                break

    # ---- results ----------------------------------------------------------------------------------
    def itl_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(per-chunk gaps, tokens of the later chunk) over every request, first chunks excluded."""
        return self._gap[: self._ngap], self._gap_tok[: self._ngap]

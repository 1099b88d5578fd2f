import pytest

from specwise.metrics.definitions import summarize_cell
from specwise.schemas import RequestRecord, Source


def _rec(i, chunks, tokens, sent=0.0):
    return RequestRecord(
        request_id=str(i), role="speculative", sent_s=sent, output_tokens=sum(tokens),
        ttft_s=chunks[0], e2e_s=chunks[-1], chunk_offsets_s=chunks, chunk_tokens=tokens,
    )


def test_tpot_itl_per_token_and_per_chunk():
    # 1 token at 0.1 s, then chunks of 3 tokens every 30 ms: per-chunk ITL 30 ms, per-token 10 ms
    r = _rec(0, [0.1, 0.13, 0.16, 0.19], [1, 3, 3, 3])
    s = summarize_cell([r], role="speculative", source=Source.measured, qps=1.0, k=3)
    assert s.itl_per_chunk_p50_s == pytest.approx(0.03)
    assert s.itl_per_token_p50_s == pytest.approx(0.01)
    assert s.tpot_p50_s == pytest.approx(0.09 / 9)
    # tokens per decode chunk 3 -> 2 accepted of k=3 per step
    assert s.acceptance_rate_per_request_p50 == pytest.approx(2 / 3)
    assert s.acceptance_source_per_request == "chunks"


def test_failed_requests_are_counted_by_kind():
    ok = _rec(0, [0.1, 0.2], [1, 1])
    bad = RequestRecord(request_id="1", role="baseline", error="boom", error_kind="http_500")
    s = summarize_cell([ok, bad], role="baseline", source=Source.measured, qps=2.0)
    assert s.requests_ok == 1 and s.requests_failed == 1
    assert s.errors_by_kind == {"http_500": 1}


def test_chunk_estimate_is_withheld_when_chunks_merge_steps():
    r = _rec(0, [0.1, 0.13, 0.16], [1, 3, 6])
    r.chunk_estimate_safe = False
    s = summarize_cell([r], role="speculative", source=Source.measured, qps=1.0, k=3)
    assert s.acceptance_rate_per_request_p50 is None and s.acceptance_source_per_request is None


def test_chunks_in_the_same_socket_read_are_counted_as_bunched():
    # gaps: 0.03, 0 (same read), 0 (same read), 0.02 -> half the gaps are zero
    r = _rec(0, [0.1, 0.13, 0.13, 0.13, 0.15], [1, 1, 1, 1, 1])
    s = summarize_cell([r], role="baseline", source=Source.measured, qps=1.0)
    assert s.chunks_same_read_share == pytest.approx(0.5)
    one_chunk = summarize_cell([_rec(1, [0.1], [5])], role="baseline", source=Source.measured, qps=1.0)
    assert one_chunk.chunks_same_read_share is None


def _steady_or_switching(step_of_second, seconds=12, per_second=4, repeat=0):
    """Requests sent through the cell, each streaming 30 chunks at the step time of the second it is in."""
    recs = []
    for i in range(seconds * per_second):
        sent = i / per_second
        t, offsets = sent + 0.01, []
        for _ in range(30):
            offsets.append(t - sent)
            t += step_of_second(int(t))
        r = _rec(f"{repeat}-{i}", offsets, [3] * 30, sent=sent)
        r.repeat = repeat
        recs.append(r)
    return recs


def test_step_windows_measure_how_steady_the_step_was():
    steady = summarize_cell(_steady_or_switching(lambda s: 0.020), role="speculative", source=Source.measured,
                            qps=4.0)
    assert steady.step_window_p10_s == pytest.approx(0.020) and steady.step_window_spread == pytest.approx(1.0)
    assert steady.step_windows >= 10
    # 20 ms for 4 s, then 32 ms for 4 s, and so on: the spread is the ratio of the two speeds
    switching = summarize_cell(_steady_or_switching(lambda s: 0.020 if (s // 4) % 2 == 0 else 0.032),
                               role="speculative", source=Source.measured, qps=4.0)
    assert switching.step_window_spread == pytest.approx(1.6, rel=0.02)


def test_step_windows_keep_repeats_apart_and_need_enough_windows():
    # two steady repeats at different speeds: pooled, their windows differ, and each window is one repeat's
    pooled = _steady_or_switching(lambda s: 0.020) + _steady_or_switching(lambda s: 0.030, repeat=1)
    s = summarize_cell(pooled, role="speculative", source=Source.measured, qps=4.0)
    assert s.step_window_p10_s == pytest.approx(0.020) and s.step_window_p90_s == pytest.approx(0.030)
    short = summarize_cell(_steady_or_switching(lambda s: 0.020, seconds=1), role="speculative",
                           source=Source.measured, qps=4.0)
    assert short.step_window_spread is None and short.step_window_p10_s is None

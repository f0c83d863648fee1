"""Checks that the Python TensorBoard reader accepts an event file written by amm's EventWriter.

  AMM_TB_OUT=/tmp/amm-tb cargo test -p amm-core --test tensorboard -- --ignored write_for_python
  python3 amm-core/tests/data/check_with_python.py /tmp/amm-tb
"""
import sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

acc = EventAccumulator(sys.argv[1])
acc.Reload()
tags = sorted(acc.Tags()["scalars"])
assert tags == ["loss", "margin", "test_error"], tags
for tag in tags:
    ev = acc.Scalars(tag)
    print(tag, [(e.step, round(e.value, 6)) for e in ev])
    assert [e.step for e in ev] == [1, 2, 3, 4, 5]
want = {"loss": [1 / e for e in range(1, 6)], "test_error": [0.5 - 0.0625 * e for e in range(1, 6)], "margin": [0.25 * e for e in range(1, 6)]}
for tag, vals in want.items():
    got = [e.value for e in acc.Scalars(tag)]
    assert all(abs(a - b) < 1e-6 for a, b in zip(got, vals)), (tag, got, vals)
print("OK: EventAccumulator read", sum(len(acc.Scalars(t)) for t in tags), "scalars")

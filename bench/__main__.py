"""Run every benchmark in turn: .venv/bin/python -m bench (or: make bench)."""

from . import bench_decode, bench_revocations, bench_ticket

bench_ticket.main()
bench_revocations.main([])
bench_decode.main()

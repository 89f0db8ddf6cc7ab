"""Run every benchmark in turn: .venv/bin/python -m bench"""

from . import bench_ticket

bench_ticket.main()

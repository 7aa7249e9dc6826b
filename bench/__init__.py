"""Benchmarks: programs that measure and print, never assert. Run from the
repository root, e.g. ``python -m bench.api_bench`` (see ``bench/README.md``).

May import anything in ``emulator``; nothing imports ``bench``.
"""

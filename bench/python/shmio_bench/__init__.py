"""Benchmark drivers: ``python -m shmio_bench {queue,region,poll,dirty,all} [--quick]``.

Runs Python-level comparisons between real processes, shows progress (tqdm when installed),
and writes a Markdown table and, when matplotlib is installed, a PNG plot to the output folder.

A package of its own beside the ``shmio`` wheel, which does not ship it: run it from a
checkout with ``PYTHONPATH=bench/python``, or install it with ``pip install ./bench/python``.
"""

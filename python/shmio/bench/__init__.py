"""Benchmark drivers: ``python -m shmio.bench {queue,region,poll,dirty,all} [--quick]``.

Runs Python-level comparisons between real processes, shows progress (tqdm when installed),
and writes a Markdown table and, when matplotlib is installed, a PNG plot to the output folder.
"""

"""The process-tree memory probe the command-level benchmarks use (benchmarks/cli_runs.py)."""
import os
import subprocess
import sys

from benchmarks.cli_runs import TreeMemory, tree


def test_tree_and_memory_include_a_grandchild():
    # a child that starts a grandchild holding ~200 MiB, then waits
    code = ("import subprocess, sys; p = subprocess.Popen([sys.executable, '-c', "
            "'import time; b = bytearray(200 * 2**20); time.sleep(30)']); "
            "print(p.pid, flush=True); p.wait()")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        grandchild = int(child.stdout.readline())
        assert grandchild in tree([os.getpid()])
        import time

        deadline = time.monotonic() + 20
        mem = TreeMemory([child.pid])
        while time.monotonic() < deadline and mem.peak_rss < 200:
            mem.sample()
            time.sleep(0.1)
        assert mem.peak_rss >= 200, mem.peak_rss
        assert mem.peak_processes == 2
        assert mem.peak_pss > 150
    finally:
        subprocess.run(["kill", str(grandchild)])
        child.wait(10)

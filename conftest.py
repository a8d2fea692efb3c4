"""Load the benchmark suite's pytest plugin (rwkv_eval/suite/plugin.py).

It is also a pytest entry point of the installed package; pytest registers a plugin once
per name, so both routes give the same single plugin.
"""

pytest_plugins = ["rwkv_eval.suite.plugin"]

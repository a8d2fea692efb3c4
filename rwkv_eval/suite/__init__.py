"""The benchmark harness: the pytest plugin, profiles, accuracy gates, thresholds, shards, the Ray launcher.

It sits above the core and the analyses (it imports them; they never import it).
"""

"""A simulated community for `kapok sim` and `kapok demo`.

- `community`: which nodes, in which units, their keys and seq counters
  (the state file), registering them with the cloud;
- `node`: one simulated node on CPython (the same messages, COSE and
  command rules as the firmware, over a model of what it measures);
- `radio`: CoAP over UDP for them, on asyncio;
- `runner`: thousands of them on their own schedules, and the incidents;
- `incidents`: the incident grammar;
- `history`: weeks of past readings, signed by each node's key, through
  the cloud's ingest (for billing months);
- `virtual`: a few nodes running the real firmware on virtual boards.
"""

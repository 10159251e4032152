# Kapok node apps: meter (gas, water, electricity), water_quality and hub.
# Each module defines `App` (the interface is in runtime/node.py); base.py
# and rules.py hold what they share.

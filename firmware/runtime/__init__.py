# The Kapok node runtime: everything a node does besides its app and its
# drivers (see node.py for how the pieces fit and the app interface).

# The version of the factory image; an OTA slot reports its manifest's.
VERSION = "0.1.0"

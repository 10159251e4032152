# Starts the node: board, stored config and app (runtime/node.py).
from runtime import node

node.main()

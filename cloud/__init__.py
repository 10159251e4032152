"""The cloud service and the property managers' dashboard."""

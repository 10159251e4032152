"""Dashboard pages, one module per part of the navigation."""

"""Gold: the business views, kept fresh from silver's changes by the ``gold`` query."""

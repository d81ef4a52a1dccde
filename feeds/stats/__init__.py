"""Publisher insight: subscribers per feed, counted from the requests the server answers."""

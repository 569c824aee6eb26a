"""One thin module per chat surface; each turns platform events into Incoming and Replies into platform calls."""

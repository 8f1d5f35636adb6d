"""Studio.Anime's operator: scales the transcoder workers to their queue."""

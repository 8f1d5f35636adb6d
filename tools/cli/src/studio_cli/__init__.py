"""`studio`: the Studio.Anime command line. It talks to the gateway over HTTP only."""

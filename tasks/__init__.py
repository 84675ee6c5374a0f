"""One @deploy function per converge step; deploy.py calls them in order."""
